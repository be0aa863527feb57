//! Capacity benchmark: builds a school population through the engine, measures it, and plans hardware from the measurements.
pub mod measure;
pub mod plan;
pub mod population;
pub mod report;
pub mod serve;
