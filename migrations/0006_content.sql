-- 0006 · content: media (first: everything else references it), then pages, posts, product_content.
--
-- RLS shape: all four carry tenant_id; media.tenant_id NULL = public media (readable by all).
-- A content row's store reference is NO ACTION: a store must be emptied before it is deleted, yet
-- deleting the tenant still cascades (the check runs at the end of the statement).
-- Upload references (seo.ogImage, coverImage, logo, …) are SET NULL; user references SET NULL.
-- jsonb arrays/blocks hold the wire rows ({id: 24 hex, …}); the engine validates their contents,
-- the database only that they are arrays.

-- ---------------------------------------------------------------------------------------------
-- media
-- ---------------------------------------------------------------------------------------------
CREATE TABLE media (
    id            uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    alt           text         NOT NULL,
    tenant_id     uuid         REFERENCES tenants (id) ON DELETE CASCADE,   -- NULL = public media
    store_id      uuid,
    caption       text,
    tags          text[]       NOT NULL DEFAULT '{}',
    filename      text         NOT NULL,
    mime_type     text         NOT NULL,
    filesize      bigint       NOT NULL,
    width         integer,
    height        integer,
    focal_x       numeric(5,2) DEFAULT 50,
    focal_y       numeric(5,2) DEFAULT 50,
    sizes         jsonb        NOT NULL DEFAULT '{}',
    storage_key   text         NOT NULL,   -- H: {tenant id or "public"}/{id}/{filename}
    sha256        char(64),                -- H
    created_by_id uuid         REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    updated_at    timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT media_store_id_fkey FOREIGN KEY (tenant_id, store_id)
        REFERENCES stores (tenant_id, id) ON DELETE NO ACTION,
    -- the composite FK is not checked while tenant_id is NULL, so a NULL-tenant row has no store
    CONSTRAINT media_store_id_requires_tenant CHECK (tenant_id IS NOT NULL OR store_id IS NULL),
    CONSTRAINT media_alt_len          CHECK (char_length(alt) <= 10000),
    CONSTRAINT media_caption_len      CHECK (char_length(caption) <= 10000),
    CONSTRAINT media_filename_len     CHECK (char_length(filename) <= 10000),
    CONSTRAINT media_mime_type_len    CHECK (char_length(mime_type) <= 10000),
    -- accepted types (original): image/*, video/*, application/pdf
    CONSTRAINT media_mime_type_format CHECK (mime_type ~ '^(?:image|video)/[a-z0-9][a-z0-9.+-]*$' OR mime_type = 'application/pdf'),
    CONSTRAINT media_filesize_range   CHECK (filesize >= 0),
    CONSTRAINT media_width_range      CHECK (width > 0),
    CONSTRAINT media_height_range     CHECK (height > 0),
    CONSTRAINT media_focal_x_range    CHECK (focal_x BETWEEN 0 AND 100),
    CONSTRAINT media_focal_y_range    CHECK (focal_y BETWEEN 0 AND 100),
    CONSTRAINT media_sizes_object     CHECK (jsonb_typeof(sizes) = 'object'),
    CONSTRAINT media_storage_key_len  CHECK (char_length(storage_key) <= 10000),
    CONSTRAINT media_sha256_format    CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    -- per tenant (Payload: global); public media (NULL tenant) is one namespace
    CONSTRAINT media_tenant_id_filename_key UNIQUE NULLS NOT DISTINCT (tenant_id, filename)
);
CREATE INDEX media_tenant_id_created_at_idx ON media (tenant_id, created_at DESC);
CREATE INDEX media_store_id_idx             ON media (store_id);
CREATE INDEX media_tags_idx                 ON media USING gin (tags);
CREATE INDEX media_created_by_id_idx        ON media (created_by_id);

-- the upload columns of stores (created in 0003, before media existed)
ALTER TABLE stores
    ADD CONSTRAINT stores_logo_id_fkey         FOREIGN KEY (logo_id)         REFERENCES media (id) ON DELETE SET NULL,
    ADD CONSTRAINT stores_favicon_id_fkey      FOREIGN KEY (favicon_id)      REFERENCES media (id) ON DELETE SET NULL,
    ADD CONSTRAINT stores_seo_og_image_id_fkey FOREIGN KEY (seo_og_image_id) REFERENCES media (id) ON DELETE SET NULL;
CREATE INDEX stores_logo_id_idx         ON stores (logo_id);
CREATE INDEX stores_favicon_id_idx      ON stores (favicon_id);
CREATE INDEX stores_seo_og_image_id_idx ON stores (seo_og_image_id);

-- ---------------------------------------------------------------------------------------------
-- pages
-- ---------------------------------------------------------------------------------------------
CREATE TABLE pages (
    id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    store_id             uuid,       -- NULL = tenant-wide page
    title                text        NOT NULL,
    slug                 text        NOT NULL,
    layout               jsonb       NOT NULL DEFAULT '[]',   -- blocks: hero, richText, media, cta
    seo_title            text,
    seo_description      text,
    seo_og_image_id      uuid        REFERENCES media (id) ON DELETE SET NULL,
    status               text        NOT NULL DEFAULT 'draft',
    publish_at           timestamptz,
    unpublish_at         timestamptz,
    published_at         timestamptz,
    created_by_id        uuid        REFERENCES users (id) ON DELETE SET NULL,
    updated_by_id        uuid        REFERENCES users (id) ON DELETE SET NULL,
    embedding            vector(768),
    embedding_updated_at timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pages_store_id_fkey FOREIGN KEY (tenant_id, store_id)
        REFERENCES stores (tenant_id, id) ON DELETE NO ACTION,
    CONSTRAINT pages_title_len           CHECK (char_length(title) <= 200),
    CONSTRAINT pages_slug_len            CHECK (char_length(slug) <= 200),
    -- kebab-case segments, '/' allowed between segments (nested paths)
    CONSTRAINT pages_slug_format         CHECK (slug ~ '^[a-z0-9]+(?:-[a-z0-9]+)*(?:/[a-z0-9]+(?:-[a-z0-9]+)*)*$'),
    CONSTRAINT pages_layout_array        CHECK (jsonb_typeof(layout) = 'array'),
    CONSTRAINT pages_seo_title_len       CHECK (char_length(seo_title) <= 200),
    CONSTRAINT pages_seo_description_len CHECK (char_length(seo_description) <= 10000),
    CONSTRAINT pages_status_check        CHECK (status IN ('draft', 'published')),
    CONSTRAINT pages_unpublish_at_after_publish_at CHECK (unpublish_at > publish_at),
    -- (design) NULL store = one tenant-wide namespace
    CONSTRAINT pages_tenant_id_store_id_slug_key UNIQUE NULLS NOT DISTINCT (tenant_id, store_id, slug)
);
CREATE INDEX pages_tenant_id_created_at_idx        ON pages (tenant_id, created_at DESC);
CREATE INDEX pages_tenant_id_status_publish_at_idx ON pages (tenant_id, status, publish_at);
CREATE INDEX pages_store_id_idx                    ON pages (store_id);
CREATE INDEX pages_seo_og_image_id_idx             ON pages (seo_og_image_id);
CREATE INDEX pages_created_by_id_idx               ON pages (created_by_id);
CREATE INDEX pages_updated_by_id_idx               ON pages (updated_by_id);
CREATE INDEX pages_title_trgm_idx                  ON pages USING gin (title gin_trgm_ops);
CREATE INDEX pages_embedding_idx                   ON pages USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);

-- ---------------------------------------------------------------------------------------------
-- posts (design: the original has no Posts collection)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE posts (
    id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    store_id             uuid,
    title                text        NOT NULL,
    slug                 text        NOT NULL,
    excerpt              text,
    content              jsonb,      -- richText (Lexical state)
    cover_image_id       uuid        REFERENCES media (id) ON DELETE SET NULL,
    author_id            uuid        REFERENCES users (id) ON DELETE SET NULL,
    tags                 text[]      NOT NULL DEFAULT '{}',
    seo_title            text,
    seo_description      text,
    seo_og_image_id      uuid        REFERENCES media (id) ON DELETE SET NULL,
    status               text        NOT NULL DEFAULT 'draft',
    publish_at           timestamptz,
    unpublish_at         timestamptz,
    published_at         timestamptz,
    created_by_id        uuid        REFERENCES users (id) ON DELETE SET NULL,
    updated_by_id        uuid        REFERENCES users (id) ON DELETE SET NULL,
    embedding            vector(768),
    embedding_updated_at timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT posts_store_id_fkey FOREIGN KEY (tenant_id, store_id)
        REFERENCES stores (tenant_id, id) ON DELETE NO ACTION,
    CONSTRAINT posts_title_len           CHECK (char_length(title) <= 200),
    CONSTRAINT posts_slug_len            CHECK (char_length(slug) <= 200),
    CONSTRAINT posts_slug_format         CHECK (slug ~ '^[a-z0-9]+(?:-[a-z0-9]+)*(?:/[a-z0-9]+(?:-[a-z0-9]+)*)*$'),
    CONSTRAINT posts_excerpt_len         CHECK (char_length(excerpt) <= 1000),
    CONSTRAINT posts_seo_title_len       CHECK (char_length(seo_title) <= 200),
    CONSTRAINT posts_seo_description_len CHECK (char_length(seo_description) <= 10000),
    CONSTRAINT posts_status_check        CHECK (status IN ('draft', 'published')),
    CONSTRAINT posts_unpublish_at_after_publish_at CHECK (unpublish_at > publish_at),
    CONSTRAINT posts_tenant_id_store_id_slug_key UNIQUE NULLS NOT DISTINCT (tenant_id, store_id, slug)
);
CREATE INDEX posts_tenant_id_created_at_idx          ON posts (tenant_id, created_at DESC);
CREATE INDEX posts_tenant_id_status_published_at_idx ON posts (tenant_id, status, published_at DESC);  -- blog order
CREATE INDEX posts_store_id_idx                      ON posts (store_id);
CREATE INDEX posts_author_id_idx                     ON posts (author_id);
CREATE INDEX posts_cover_image_id_idx                ON posts (cover_image_id);
CREATE INDEX posts_seo_og_image_id_idx               ON posts (seo_og_image_id);
CREATE INDEX posts_created_by_id_idx                 ON posts (created_by_id);
CREATE INDEX posts_updated_by_id_idx                 ON posts (updated_by_id);
CREATE INDEX posts_tags_idx                          ON posts USING gin (tags);
CREATE INDEX posts_embedding_idx                     ON posts USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);

-- ---------------------------------------------------------------------------------------------
-- product_content — editorial content for Medusa products
-- ---------------------------------------------------------------------------------------------
CREATE TABLE product_content (
    id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    store_id             uuid,
    medusa_product_id    text        NOT NULL,
    handle               text,       -- RO: Medusa's product handle, refreshed by sync
    medusa_variant_ids   text[]      NOT NULL DEFAULT '{}',
    medusa_snapshot      jsonb,
    last_sync_at         timestamptz,
    -- default 'pending' (original: 'synced'): nothing has been pushed yet
    sync_status          text        NOT NULL DEFAULT 'pending',
    last_sync_error      text,
    title                text        NOT NULL,
    description          jsonb,      -- richText
    features             text[]      NOT NULL DEFAULT '{}',
    specifications       jsonb       NOT NULL DEFAULT '[]',   -- rows {id, label, value}
    content_blocks       jsonb       NOT NULL DEFAULT '[]',   -- blocks: textBlock, imageGallery, videoEmbed
    seo_title            text,
    seo_description      text,
    seo_keywords         text,
    seo_og_image_id      uuid        REFERENCES media (id) ON DELETE SET NULL,
    editorial_status     text        NOT NULL DEFAULT 'draft',
    tags                 text[]      NOT NULL DEFAULT '{}',
    metadata             jsonb,
    created_by_id        uuid        REFERENCES users (id) ON DELETE SET NULL,
    updated_by_id        uuid        REFERENCES users (id) ON DELETE SET NULL,
    embedding            vector(768),
    embedding_updated_at timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT product_content_store_id_fkey FOREIGN KEY (tenant_id, store_id)
        REFERENCES stores (tenant_id, id) ON DELETE NO ACTION,
    CONSTRAINT product_content_medusa_product_id_len CHECK (char_length(medusa_product_id) <= 10000),
    CONSTRAINT product_content_handle_len            CHECK (char_length(handle) <= 10000),
    CONSTRAINT product_content_sync_status_check     CHECK (sync_status IN ('synced', 'pending', 'failed', 'conflict')),
    CONSTRAINT product_content_last_sync_error_len   CHECK (char_length(last_sync_error) <= 10000),
    CONSTRAINT product_content_title_len             CHECK (char_length(title) <= 200),
    CONSTRAINT product_content_specifications_array  CHECK (jsonb_typeof(specifications) = 'array'),
    CONSTRAINT product_content_content_blocks_array  CHECK (jsonb_typeof(content_blocks) = 'array'),
    CONSTRAINT product_content_seo_title_len         CHECK (char_length(seo_title) <= 200),
    CONSTRAINT product_content_seo_description_len   CHECK (char_length(seo_description) <= 10000),
    CONSTRAINT product_content_seo_keywords_len      CHECK (char_length(seo_keywords) <= 10000),
    CONSTRAINT product_content_editorial_status_check CHECK (editorial_status IN ('draft', 'review', 'published')),
    -- (design) per tenant; the original was globally unique
    CONSTRAINT product_content_tenant_id_medusa_product_id_key UNIQUE (tenant_id, medusa_product_id)
);
CREATE INDEX product_content_tenant_id_created_at_idx       ON product_content (tenant_id, created_at DESC);
CREATE INDEX product_content_tenant_id_editorial_status_idx ON product_content (tenant_id, editorial_status);
CREATE INDEX product_content_tenant_id_sync_status_idx      ON product_content (tenant_id, sync_status);
CREATE INDEX product_content_store_id_idx                   ON product_content (store_id);
CREATE INDEX product_content_seo_og_image_id_idx            ON product_content (seo_og_image_id);
CREATE INDEX product_content_created_by_id_idx              ON product_content (created_by_id);
CREATE INDEX product_content_updated_by_id_idx              ON product_content (updated_by_id);
CREATE INDEX product_content_tags_idx                       ON product_content USING gin (tags);
CREATE INDEX product_content_embedding_idx                  ON product_content USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);

CREATE TRIGGER media_set_updated_at           BEFORE UPDATE ON media           FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();
CREATE TRIGGER pages_set_updated_at           BEFORE UPDATE ON pages           FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();
CREATE TRIGGER posts_set_updated_at           BEFORE UPDATE ON posts           FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();
CREATE TRIGGER product_content_set_updated_at BEFORE UPDATE ON product_content FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();

GRANT SELECT, INSERT, UPDATE, DELETE ON media, pages, posts, product_content TO cityos_app;
