//! CityOS Orchestrator: the content, tenancy and integration control plane of Dakkah CityOS,
//! serving Payload CMS 3's REST wire format from one binary.
//!
//! Map: `cli` → `config` → `app` (router + state) → `http` (errors, middleware, extractors) →
//! `auth` (who) → `authz` (may they: Cerbos policies) → `tenancy` (where) →
//! `collections` (declarations + the one engine) → `db` (pool, embedded cluster, migrations).

pub mod admin;
pub mod app;
pub mod auth;
pub mod authz;
pub mod cli;
pub mod collections;
pub mod config;
pub mod crypto;
pub mod db;
pub mod http;
pub mod integrations;
pub mod media;
pub mod notify;
pub mod telemetry;
pub mod tenancy;
pub mod util;
pub mod web;

pub use app::{AppState, Application};
pub use config::Config;
