//! The catalogue's source of truth: SQLite (the only module that imports rusqlite).
