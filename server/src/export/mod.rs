//! A tenant's complete export and import (the exit path): a plain tar archive of every file with
//! its exact name, and `manifest.json` describing accounts, groups, spaces, dead properties,
//! versions, trash, hand-ins, receipts and quotas, with each file's BLAKE3 and size so that the
//! archive verifies itself. Format: `docs/export.md`.

pub mod load;
pub mod manifest;
mod merge;
mod tarball;
pub mod verify;
pub mod write;

use std::path::PathBuf;

/// What `skab export` asks of the process that holds the store.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExportRequest {
    /// The data dir (user database, hand-ins and receipts are read from it).
    pub data_dir: PathBuf,
    pub tenant: String,
    /// Only this user's home and account.
    pub user: Option<String>,
    /// The archive to write (replaced when it exists).
    pub out: PathBuf,
    pub with_password_hashes: bool,
    pub with_receipt_key: bool,
}

/// What `skab import` asks of the process that holds the store.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImportRequest {
    pub data_dir: PathBuf,
    /// The archive to read.
    pub input: PathBuf,
    /// Merge into a tenant (or user) the data dir has already (`docs/export.md`, "Merge").
    #[serde(default)]
    pub merge: bool,
}
