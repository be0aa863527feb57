//! The per-space namespace tree: nodes, names, contents, versions, trash and snapshots.
