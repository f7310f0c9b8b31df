use super::prelude::*;

/// Domains of a tenant itself (rows with a store belong to that store).
pub static SUBDOMAINS: ChildDecl = ChildDecl {
    table: "domains",
    owner_column: "tenant_id",
    fixed: &[("kind", "subdomain")],
    store_null: true,
    columns: &[
        ("subdomain", "hostname", ChildKind::Text),
        ("isPrimary", "is_primary", ChildKind::Bool),
    ],
    bare_string: Some("subdomain"),
    condition: None,
    order_column: "position",
};
pub static CUSTOM_DOMAINS: ChildDecl = ChildDecl {
    table: "domains",
    owner_column: "tenant_id",
    fixed: &[("kind", "custom")],
    store_null: true,
    columns: &[
        ("domain", "hostname", ChildKind::Text),
        ("verified", "verified", ChildKind::Bool),
        ("isPrimary", "is_primary", ChildKind::Bool),
    ],
    bare_string: Some("domain"),
    condition: None,
    order_column: "position",
};

pub static DECL: CollectionDecl = CollectionDecl {
    slug: "tenants",
    table: "tenants",
    singular: "Tenant",
    plural: "Tenants",
    group: AdminGroup::Tenancy,
    scope: Scope::TenantSelf,
    fields: &[
        name("handle", "handle", "Handle")
            .required()
            .format(Format::Handle),
        name("name", "name", "Name").required(),
        select(
            "status",
            "status",
            "Status",
            &["active", "trial", "suspended", "inactive"],
        )
        .required()
        .default(Default::Str("trial")),
        select(
            "subscriptionTier",
            "subscription_tier",
            "Subscription Tier",
            &["basic", "pro", "enterprise", "custom"],
        )
        .required()
        .default(Default::Str("basic")),
        Field::new("billingEmail", "billing_email", "Billing Email", Kind::Email).not_public(),
        rel("country", "country_id", "Country", "countries").required(),
        rel("scope", "scope_id", "Scope", "scopes"),
        rel("category", "category_id", "Category", "categories"),
        rel("subcategory", "subcategory_id", "Subcategory", "subcategories"),
        Field::new("subdomains", "", "Subdomains", Kind::Child(&SUBDOMAINS)),
        Field::new(
            "customDomains",
            "",
            "Custom Domains",
            Kind::Child(&CUSTOM_DOMAINS),
        ),
        text("medusaTenantId", "medusa_tenant_id", "Medusa Tenant ID").not_public(),
        text("keycloakRealmId", "keycloak_realm_id", "Keycloak Realm ID").not_public(),
        date("trialEndsAt", "trial_ends_at", "Trial Ends At").not_public(),
        json("metadata", "metadata", "Metadata").not_public(),
    ],
    default_sort: "name",
    hooks: Hooks::NONE,
    unique: &[
        ("tenants_handle_key", "handle"),
        ("tenants_medusa_tenant_id_key", "medusaTenantId"),
        ("domains_kind_hostname_key", "subdomains"),
    ],
    auth: false,
    invalidates: &[CacheKind::Tenants],
};
