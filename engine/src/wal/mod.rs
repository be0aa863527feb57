//! Per-shard write-ahead logs: record framing and the group-committing log.

pub(crate) mod frame;
pub(crate) mod log;

pub(crate) use log::ShardLog;
