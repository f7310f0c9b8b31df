//! The engine: query string → parameters → `where` → SQL → documents.

pub mod audit;
pub mod params;
pub mod qs;
pub mod query;
pub mod read;
pub mod validate;
pub mod write;
