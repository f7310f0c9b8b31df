use super::prelude::*;

pub static DECL: CollectionDecl = CollectionDecl {
    slug: "media",
    table: "media",
    singular: "Media",
    plural: "Media",
    group: AdminGroup::Content,
    scope: Scope::TenantOptional,
    fields: &[
        text("alt", "alt", "Alt Text").required(),
        rel("tenant", "tenant_id", "Tenant", "tenants").default(Default::ContextTenant),
        store_field(),
        text("caption", "caption", "Caption"),
        list("tags", "tags", "Tags", "tag", None),
        text("filename", "filename", "Filename").read_only(),
        text("mimeType", "mime_type", "MIME Type").read_only(),
        Field::new("filesize", "filesize", "File Size", Kind::BigInt).read_only(),
        Field::new("width", "width", "Width", Kind::Int).read_only(),
        Field::new("height", "height", "Height", Kind::Int).read_only(),
        Field::new("focalX", "focal_x", "Focal X", Kind::Numeric),
        Field::new("focalY", "focal_y", "Focal Y", Kind::Numeric),
        Field::new("sizes", "sizes", "Sizes", Kind::Json).read_only(),
        rel("createdBy", "created_by_id", "Created By", "users")
            .read_only()
            .default(Default::Caller),
    ],
    default_sort: "-createdAt",
    hooks: Hooks {
        after_read: Some(hooks::media_urls),
        ..Hooks::NONE
    },
    unique: &[("media_tenant_id_filename_key", "filename")],
    auth: false,
    invalidates: &[],
};
