//! Skab benchmark helpers (corpus generation shared by the benches and the capacity benchmark).
pub mod capacity;
pub mod corpus;
pub mod cputime;
