//! Content-defined chunking and keyed chunk hashing.
