//! The full-text search index, derived from the store and always rebuildable (the only module that imports tantivy).
