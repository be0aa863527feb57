//! Skab's server: configuration, users, authentication and (later) WebDAV over HTTP.

pub mod auth;
pub mod cli;
pub mod config;
pub mod limits;
pub mod users;
