use super::prelude::*;

pub static DECL: CollectionDecl = CollectionDecl {
    slug: "scopes",
    table: "scopes",
    singular: "Scope",
    plural: "Scopes",
    group: AdminGroup::GeoHierarchy,
    scope: Scope::Global,
    fields: &[
        select("scopeType", "scope_type", "Scope Type", &["theme", "city"]).required(),
        name("name", "name", "Name").required(),
        name("nameAr", "name_ar", "Name (Arabic)"),
        rel("country", "country_id", "Country", "countries").required(),
        select("status", "status", "Status", ACTIVE_INACTIVE)
            .required()
            .default(Default::Str("active")),
        json("metadata", "metadata", "Metadata"),
    ],
    default_sort: "name",
    hooks: Hooks::NONE,
    unique: &[("scopes_country_id_scope_type_name_key", "name")],
    auth: false,
    invalidates: &[],
};
