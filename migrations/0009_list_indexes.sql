-- 0009 · covering indexes for the hot list queries.
--
-- Every list sorts by its keys and then by id (stable pages), and public content lists filter on
-- the publish window. With these, a tenant's page of documents and its totalDocs come from an
-- index-only scan in order: no heap visit for the count, no sort. The (tenant_id, created_at DESC)
-- indexes of 0006 stay: they are the spec's, and a prefix of these.
CREATE INDEX pages_tenant_id_created_at_id_idx ON pages (tenant_id, created_at DESC, id DESC)
    INCLUDE (status, publish_at, unpublish_at);
CREATE INDEX pages_live_idx ON pages (tenant_id, status, created_at DESC, id DESC)
    INCLUDE (publish_at, unpublish_at);
CREATE INDEX pages_live_published_at_idx ON pages (tenant_id, status, published_at DESC, id DESC)
    INCLUDE (publish_at, unpublish_at);
CREATE INDEX posts_tenant_id_created_at_id_idx ON posts (tenant_id, created_at DESC, id DESC)
    INCLUDE (status, publish_at, unpublish_at);
CREATE INDEX posts_live_idx ON posts (tenant_id, status, published_at DESC, id DESC)
    INCLUDE (publish_at, unpublish_at);
