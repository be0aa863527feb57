//! Skab's server: WebDAV over HTTP on the storage engine, with tenants, users, auth, locks,
//! admin commands and metrics.

pub mod access_log;
pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod cors;
pub mod crypt;
pub mod dav;
pub mod export;
pub mod fair_share;
pub mod file_lock;
pub mod framed_json;
pub mod handin;
pub mod history;
pub mod history_dav;
pub mod http;
pub mod limits;
pub mod methods;
pub mod metrics;
pub mod oc;
pub mod own_files;
pub mod route;
pub mod serve;
pub mod spaces;
pub mod users;
