use super::prelude::*;

const PORTAL_AUDIENCE: &[&str] = &[
    "public",
    "super_admin",
    "tenant_admin",
    "store_manager",
    "vendor_owner",
    "vendor_staff",
    "b2b_company_admin",
    "b2b_buyer",
    "b2b_approver",
    "city_partner_admin",
];

pub static DECL: CollectionDecl = CollectionDecl {
    slug: "portals",
    table: "portals",
    singular: "Portal",
    plural: "Portals",
    group: AdminGroup::Portals,
    scope: Scope::Tenant,
    fields: &[
        name("name", "name", "Name").required(),
        tenant_field(),
        rel("store", "store_id", "Store", "stores"),
        select(
            "portalType",
            "portal_type",
            "Portal Type",
            &[
                "public",
                "tenant_admin",
                "vendor",
                "b2b",
                "city_partner",
                "operator",
            ],
        )
        .required(),
        text("basePath", "base_path", "Base Path")
            .required()
            .default(Default::Str("/")),
        list(
            "allowedRoles",
            "allowed_roles",
            "Allowed Roles",
            "role",
            Some(PORTAL_AUDIENCE),
        )
        .required(),
        list(
            "config.enabledFeatures",
            "config_enabled_features",
            "Enabled Features",
            "feature",
            None,
        ),
        json("config.theme", "config_theme", "Theme"),
        json("config.customization", "config_customization", "Customization"),
        json("metadata", "metadata", "Metadata"),
    ],
    default_sort: "name",
    hooks: Hooks::NONE,
    unique: &[("portals_tenant_id_store_id_base_path_key", "basePath")],
    auth: false,
    invalidates: &[],
};
