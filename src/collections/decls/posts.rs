use super::prelude::*;

pub static DECL: CollectionDecl = CollectionDecl {
    slug: "posts",
    table: "posts",
    singular: "Post",
    plural: "Posts",
    group: AdminGroup::Content,
    scope: Scope::Tenant,
    fields: &[
        tenant_field(),
        store_field(),
        name("title", "title", "Title").required(),
        name("slug", "slug", "Slug").format(Format::Slug),
        textarea("excerpt", "excerpt", "Excerpt").max(1000),
        Field::new("content", "content", "Content", Kind::RichText),
        upload("coverImage", "cover_image_id", "Cover Image"),
        rel("author", "author_id", "Author", "users").default(Default::Caller),
        list("tags", "tags", "Tags", "tag", None),
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
        ..Hooks::NONE
    },
    unique: &[("posts_tenant_id_store_id_slug_key", "slug")],
    auth: false,
    invalidates: &[],
};
