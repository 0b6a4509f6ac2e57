//! Where servers come from, and crawling many of them with deadlines and retries.
