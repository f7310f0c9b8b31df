use super::prelude::*;

pub static DECL: CollectionDecl = CollectionDecl {
    slug: "categories",
    table: "categories",
    singular: "Category",
    plural: "Categories",
    group: AdminGroup::GeoHierarchy,
    scope: Scope::Global,
    fields: &[
        name("name", "name", "Name").required(),
        name("nameAr", "name_ar", "Name (Arabic)"),
        rel("scope", "scope_id", "Scope", "scopes"),
        select("status", "status", "Status", ACTIVE_INACTIVE)
            .required()
            .default(Default::Str("active")),
        json("metadata", "metadata", "Metadata"),
    ],
    default_sort: "name",
    hooks: Hooks::NONE,
    unique: &[("categories_scope_id_name_key", "name")],
    auth: false,
    invalidates: &[],
};
