//! One small declaration per collection, in the spec's order.

mod prelude {
    pub use crate::collections::decl::f::*;
    pub use crate::collections::decl::{
        AdminGroup, Block, CacheKind, ChildDecl, ChildKind, CollectionDecl, Default, Field, Format, Kind,
        Scope, SubField, SubKind,
    };
    pub use crate::collections::hooks::{self, Hooks};

    pub const ACTIVE_INACTIVE: &[&str] = &["active", "inactive"];
    pub const DRAFT_PUBLISHED: &[&str] = &["draft", "published"];
    pub const SYSTEMS: &[&str] = &["medusa", "fleetbase", "erpnext", "notifications", "custom"];
    pub use crate::auth::principal::MEMBERSHIP_ROLES;
    pub const fn tenant_field() -> Field {
        rel("tenant", "tenant_id", "Assigned Tenant", "tenants")
            .required()
            .default(Default::ContextTenant)
    }
    pub const fn store_field() -> Field {
        rel("store", "store_id", "Store", "stores").default(Default::ContextStore)
    }
}

pub mod api_keys;
pub mod audit_logs;
pub mod categories;
pub mod countries;
pub mod integration_endpoints;
pub mod media;
pub mod pages;
pub mod portals;
pub mod posts;
pub mod product_content;
pub mod scopes;
pub mod stores;
pub mod subcategories;
pub mod sync_jobs;
pub mod tenants;
pub mod users;
pub mod webhook_logs;

use crate::collections::decl::CollectionDecl;

/// Every collection the server serves.
pub static ALL: &[&CollectionDecl] = &[
    &countries::DECL,
    &scopes::DECL,
    &categories::DECL,
    &subcategories::DECL,
    &tenants::DECL,
    &stores::DECL,
    &portals::DECL,
    &users::DECL,
    &api_keys::DECL,
    &pages::DECL,
    &posts::DECL,
    &media::DECL,
    &product_content::DECL,
    &integration_endpoints::DECL,
    &webhook_logs::DECL,
    &sync_jobs::DECL,
    &audit_logs::DECL,
];
