use super::prelude::*;

pub static DECL: CollectionDecl = CollectionDecl {
    slug: "api-keys",
    table: "api_keys",
    singular: "API Key",
    plural: "API Keys",
    group: AdminGroup::UsersSecurity,
    scope: Scope::TenantOptional,
    fields: &[
        name("name", "name", "Name").required(),
        text("prefix", "prefix", "Prefix").read_only(),
        text("keyHash", "key_hash", "Key Hash").hidden(),
        select(
            "ownerType",
            "owner_type",
            "Owner Type",
            &["user", "service", "integration"],
        )
        .required()
        .default(Default::Str("user")),
        text("ownerRef", "owner_ref", "Owner")
            .required()
            .default(Default::Caller),
        list("scopes", "scopes", "Scopes", "scope", None).required(),
        rel("tenant", "tenant_id", "Tenant", "tenants").default(Default::ContextTenant),
        rel("store", "store_id", "Store", "stores"),
        select("status", "status", "Status", &["active", "revoked", "expired"])
            .required()
            .default(Default::Str("active")),
        date("revokedAt", "revoked_at", "Revoked At").read_only(),
        date("expiresAt", "expires_at", "Expires At"),
        date("lastUsedAt", "last_used_at", "Last Used At").read_only(),
        Field::new("usageCount", "usage_count", "Usage Count", Kind::BigInt).read_only(),
        Field::new(
            "rateLimit.requestsPerHour",
            "rate_limit_requests_per_hour",
            "Requests per Hour",
            Kind::Int,
        ),
        Field::new(
            "rateLimit.requestsPerDay",
            "rate_limit_requests_per_day",
            "Requests per Day",
            Kind::Int,
        ),
        rel("createdBy", "created_by_id", "Created By", "users")
            .read_only()
            .default(Default::Caller),
        json("metadata", "metadata", "Metadata"),
    ],
    default_sort: "-createdAt",
    hooks: Hooks {
        before_validate: Some(hooks::api_key_lifecycle),
        ..Hooks::NONE
    },
    unique: &[("api_keys_prefix_key", "prefix")],
    auth: false,
    invalidates: &[CacheKind::Principals],
};
