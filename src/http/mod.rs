//! HTTP plumbing shared by every route: errors, request ids, CORS, method override, extractors.

pub mod cors;
pub mod error;
pub mod extract;
pub mod health;
pub mod method_override;
pub mod request_id;
