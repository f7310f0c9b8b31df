use super::prelude::*;

pub static SUBDOMAINS: ChildDecl = ChildDecl {
    table: "domains",
    owner_column: "store_id",
    fixed: &[("kind", "subdomain")],
    store_null: false,
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
    owner_column: "store_id",
    fixed: &[("kind", "custom")],
    store_null: false,
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
    slug: "stores",
    table: "stores",
    singular: "Store",
    plural: "Stores",
    group: AdminGroup::Tenancy,
    scope: Scope::Tenant,
    fields: &[
        tenant_field(),
        name("handle", "handle", "Handle")
            .required()
            .format(Format::Handle),
        name("name", "name", "Name").required(),
        select(
            "status",
            "status",
            "Status",
            &["active", "inactive", "maintenance"],
        )
        .required()
        .default(Default::Str("active")),
        select(
            "storefrontType",
            "storefront_type",
            "Storefront Type",
            &[
                "retail",
                "services",
                "digital",
                "marketplace",
                "b2b",
                "subscription",
                "hybrid",
            ],
        )
        .required()
        .default(Default::Str("retail")),
        Field::new("subdomains", "", "Subdomains", Kind::Child(&SUBDOMAINS)),
        Field::new(
            "customDomains",
            "",
            "Custom Domains",
            Kind::Child(&CUSTOM_DOMAINS),
        ),
        text("storefrontUrl", "storefront_url", "Storefront URL").format(Format::HttpUrl),
        json("themeConfig", "theme_config", "Theme Config"),
        upload("logo", "logo_id", "Logo"),
        upload("favicon", "favicon_id", "Favicon"),
        name("seo.title", "seo_title", "SEO Title"),
        textarea("seo.description", "seo_description", "SEO Description"),
        upload("seo.ogImage", "seo_og_image_id", "SEO Image"),
        Field::new("location", "location", "Location", Kind::Point),
        text("medusaVendorId", "medusa_vendor_id", "Medusa Vendor ID"),
        text("medusaStoreId", "medusa_store_id", "Medusa Store ID"),
        text(
            "medusaSalesChannelId",
            "medusa_sales_channel_id",
            "Medusa Sales Channel ID",
        ),
        list(
            "medusaRegionIds",
            "medusa_region_ids",
            "Medusa Region IDs",
            "regionId",
            None,
        ),
        text("cmsSiteId", "cms_site_id", "CMS Site ID"),
        json("metadata", "metadata", "Metadata"),
    ],
    default_sort: "name",
    hooks: Hooks {
        after_change: Some(hooks::vendor_store_sync),
        ..Hooks::NONE
    },
    unique: &[
        ("stores_tenant_id_handle_key", "handle"),
        ("domains_kind_hostname_key", "subdomains"),
    ],
    auth: false,
    invalidates: &[CacheKind::Tenants],
};
