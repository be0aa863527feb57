//! Per-shard write-ahead logs: record framing, the group-committing log and its
//! recovery (`recover`).

pub(crate) mod frame;
pub(crate) mod log;
pub(crate) mod recover;

pub(crate) use log::ShardLog;
