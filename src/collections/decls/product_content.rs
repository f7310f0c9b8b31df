use super::prelude::*;

static SPEC_ROW: &[SubField] = &[
    SubField {
        name: "label",
        kind: SubKind::Text,
        required: true,
    },
    SubField {
        name: "value",
        kind: SubKind::Text,
        required: true,
    },
];
static GALLERY_ROW: &[SubField] = &[
    SubField {
        name: "image",
        kind: SubKind::Upload("media"),
        required: true,
    },
    SubField {
        name: "caption",
        kind: SubKind::Text,
        required: false,
    },
];
pub static CONTENT_BLOCKS: &[Block] = &[
    Block {
        slug: "textBlock",
        fields: &[
            SubField {
                name: "heading",
                kind: SubKind::Text,
                required: false,
            },
            SubField {
                name: "content",
                kind: SubKind::RichText,
                required: true,
            },
        ],
    },
    Block {
        slug: "imageGallery",
        fields: &[SubField {
            name: "images",
            kind: SubKind::Rows(GALLERY_ROW),
            required: false,
        }],
    },
    Block {
        slug: "videoEmbed",
        fields: &[
            SubField {
                name: "url",
                kind: SubKind::Text,
                required: true,
            },
            SubField {
                name: "caption",
                kind: SubKind::Text,
                required: false,
            },
        ],
    },
];

pub static DECL: CollectionDecl = CollectionDecl {
    slug: "product-content",
    table: "product_content",
    singular: "Product Content",
    plural: "Product Content",
    group: AdminGroup::Content,
    scope: Scope::Tenant,
    fields: &[
        tenant_field(),
        store_field(),
        text("medusaProductId", "medusa_product_id", "Medusa Product ID").required(),
        text("handle", "handle", "Handle").read_only(),
        list(
            "medusaVariantIds",
            "medusa_variant_ids",
            "Medusa Variant IDs",
            "variantId",
            None,
        ),
        json("medusaSnapshot", "medusa_snapshot", "Medusa Snapshot").read_only(),
        date("lastSyncAt", "last_sync_at", "Last Sync").read_only(),
        select(
            "syncStatus",
            "sync_status",
            "Sync Status",
            &["synced", "pending", "failed", "conflict"],
        )
        .read_only(),
        text("lastSyncError", "last_sync_error", "Last Sync Error").read_only(),
        name("title", "title", "Title").required(),
        Field::new("description", "description", "Description", Kind::RichText),
        list("features", "features", "Features", "feature", None),
        Field::new(
            "specifications",
            "specifications",
            "Specifications",
            Kind::Rows(SPEC_ROW),
        ),
        Field::new(
            "contentBlocks",
            "content_blocks",
            "Content Blocks",
            Kind::Blocks(CONTENT_BLOCKS),
        ),
        name("seo.title", "seo_title", "SEO Title"),
        textarea("seo.description", "seo_description", "SEO Description"),
        text("seo.keywords", "seo_keywords", "SEO Keywords"),
        upload("seo.ogImage", "seo_og_image_id", "SEO Image"),
        select(
            "editorialStatus",
            "editorial_status",
            "Editorial Status",
            &["draft", "review", "published"],
        )
        .required()
        .default(Default::Str("draft")),
        list("tags", "tags", "Tags", "tag", None),
        json("metadata", "metadata", "Metadata"),
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
        after_change: Some(hooks::product_content_sync),
        ..Hooks::NONE
    },
    unique: &[(
        "product_content_tenant_id_medusa_product_id_key",
        "medusaProductId",
    )],
    auth: false,
    invalidates: &[],
};
