//! All integration tests of the `skab` server in one test binary (one link instead of one per
//! file: a cold CI build links and stores one large binary, not thirty-four). Each module is
//! one area; `cargo test -p skab-server --test it <module>::` runs one area.

mod common;

mod admin;
mod audit;
mod backup;
mod behind_proxy;
mod cadaver;
mod cli;
mod cluster;
mod cors;
mod crash_harness;
mod crypt;
mod diskfull;
mod edge;
mod etag_propagation;
mod export;
mod handin;
mod history_cli;
mod history_scopes;
mod hostile;
mod http1;
mod import_merge;
mod isolation;
mod litmus;
mod login_load;
mod object_storage;
mod oc_protocol;
mod operation;
mod packaging;
mod quirks;
mod rclone;
mod soak;
mod spaces;
mod sync_clients;
mod sync_collection;
mod tls;
mod tls_idle;
mod upload_form;
mod versions_trash;
