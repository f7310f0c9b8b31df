use super::prelude::*;

pub static DECL: CollectionDecl = CollectionDecl {
    slug: "subcategories",
    table: "subcategories",
    singular: "Subcategory",
    plural: "Subcategories",
    group: AdminGroup::GeoHierarchy,
    scope: Scope::Global,
    fields: &[
        name("name", "name", "Name").required(),
        name("nameAr", "name_ar", "Name (Arabic)"),
        rel("category", "category_id", "Category", "categories").required(),
        select("status", "status", "Status", ACTIVE_INACTIVE)
            .required()
            .default(Default::Str("active")),
        json("metadata", "metadata", "Metadata"),
    ],
    default_sort: "name",
    hooks: Hooks::NONE,
    unique: &[("subcategories_category_id_name_key", "name")],
    auth: false,
    invalidates: &[],
};
