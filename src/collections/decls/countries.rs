use super::prelude::*;

pub static DECL: CollectionDecl = CollectionDecl {
    slug: "countries",
    table: "countries",
    singular: "Country",
    plural: "Countries",
    group: AdminGroup::GeoHierarchy,
    scope: Scope::Global,
    fields: &[
        Field::new("code", "code", "Code", Kind::Text)
            .required()
            .format(Format::CountryCode),
        name("name", "name", "Name").required(),
        name("nameAr", "name_ar", "Name (Arabic)"),
        select("status", "status", "Status", ACTIVE_INACTIVE)
            .required()
            .default(Default::Str("active")),
        json("metadata", "metadata", "Metadata"),
    ],
    default_sort: "name",
    hooks: Hooks::NONE,
    unique: &[("countries_code_key", "code")],
    auth: false,
    invalidates: &[],
};
