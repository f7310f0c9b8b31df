use super::prelude::*;

pub static LAYOUT_BLOCKS: &[Block] = &[
    Block {
        slug: "hero",
        fields: &[
            SubField {
                name: "title",
                kind: SubKind::Text,
                required: true,
            },
            SubField {
                name: "subtitle",
                kind: SubKind::Text,
                required: false,
            },
            SubField {
                name: "image",
                kind: SubKind::Upload("media"),
                required: false,
            },
            SubField {
                name: "cta",
                kind: SubKind::Text,
                required: false,
            },
            SubField {
                name: "ctaLink",
                kind: SubKind::Text,
                required: false,
            },
        ],
    },
    Block {
        slug: "richText",
        fields: &[SubField {
            name: "content",
            kind: SubKind::RichText,
            required: true,
        }],
    },
    Block {
        slug: "media",
        fields: &[
            SubField {
                name: "media",
                kind: SubKind::Upload("media"),
                required: true,
            },
            SubField {
                name: "caption",
                kind: SubKind::Text,
                required: false,
            },
        ],
    },
    Block {
        slug: "cta",
        fields: &[
            SubField {
                name: "heading",
                kind: SubKind::Text,
                required: false,
            },
            SubField {
                name: "text",
                kind: SubKind::Text,
                required: false,
            },
            SubField {
                name: "label",
                kind: SubKind::Text,
                required: true,
            },
            SubField {
                name: "link",
                kind: SubKind::Text,
                required: true,
            },
            SubField {
                name: "style",
                kind: SubKind::Select(&["primary", "secondary"]),
                required: false,
            },
        ],
    },
];

pub static DECL: CollectionDecl = CollectionDecl {
    slug: "pages",
    table: "pages",
    singular: "Page",
    plural: "Pages",
    group: AdminGroup::Content,
    scope: Scope::Tenant,
    fields: &[
        tenant_field(),
        store_field(),
        name("title", "title", "Title").required(),
        name("slug", "slug", "Slug").format(Format::Slug),
        Field::new("layout", "layout", "Layout", Kind::Blocks(LAYOUT_BLOCKS)),
        name("seo.title", "seo_title", "SEO Title"),
        textarea("seo.description", "seo_description", "SEO Description"),
        upload("seo.ogImage", "seo_og_image_id", "SEO Image"),
        select("status", "status", "Status", DRAFT_PUBLISHED)
            .required()
            .default(Default::Str("draft")),
        date("publishAt", "publish_at", "Publish At"),
        date("unpublishAt", "unpublish_at", "Unpublish At"),
        date("publishedAt", "published_at", "Published At").read_only(),
        rel("createdBy", "created_by_id", "Created By", "users")
            .read_only()
            .default(Default::Caller),
        rel("updatedBy", "updated_by_id", "Updated By", "users")
            .read_only()
            .default(Default::CallerAlways),
        Field::new("embedding", "embedding", "Embedding", Kind::Vector),
        date(
            "embeddingUpdatedAt",
            "embedding_updated_at",
            "Embedding Updated At",
        )
        .read_only(),
    ],
    default_sort: "-createdAt",
    hooks: Hooks {
        before_validate: Some(hooks::slug_from_title),
        before_change: Some(hooks::stamp_published_at),
        after_change: Some(hooks::published_page_sync),
        ..Hooks::NONE
    },
    unique: &[("pages_tenant_id_store_id_slug_key", "slug")],
    auth: false,
    invalidates: &[],
};
