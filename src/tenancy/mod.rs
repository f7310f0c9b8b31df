//! Tenant context: which tenant (and store) a request acts in.

pub mod cache;
pub mod resolve;
