//! Klef's storage layer: SQLite (the embedded local vault and the default server database) and
//! PostgreSQL, behind one [`Store`] API. It stores metadata and sealed bytes only.
