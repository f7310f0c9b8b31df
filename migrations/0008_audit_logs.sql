-- 0008 · audit_logs — append-only, tenant-scoped, written by the engine in the same transaction as
-- the change it records. No FKs on purpose: the history outlives the users, keys, tenants and
-- stores it names. RLS shape: tenant_id; NULL-tenant rows (platform actions) need all_tenants.

CREATE TABLE audit_logs (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    actor_type       text        NOT NULL,
    actor_user_id    uuid,
    actor_api_key_id uuid,
    -- no CHECK on the values: a failing audit insert would abort the user's write with it
    actor_roles      text[]      NOT NULL DEFAULT '{}',
    action           text        NOT NULL,
    collection       text        NOT NULL,
    doc_id           text,
    tenant_id        uuid,
    store_id         uuid,
    request_id       text,
    context_source   text,
    ip               inet,
    user_agent       text,
    diff_summary     jsonb,
    metadata         jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),   -- also the wire field `timestamp`
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_logs_actor_type_check     CHECK (actor_type IN ('user', 'api_key', 'system', 'webhook')),
    CONSTRAINT audit_logs_action_check         CHECK (action IN ('create', 'update', 'delete', 'read', 'login', 'logout',
                                                                 'login_failed', 'access_denied', 'event')),
    CONSTRAINT audit_logs_collection_len       CHECK (char_length(collection) <= 10000),
    CONSTRAINT audit_logs_doc_id_len           CHECK (char_length(doc_id) <= 10000),
    CONSTRAINT audit_logs_request_id_len       CHECK (char_length(request_id) <= 10000),
    CONSTRAINT audit_logs_context_source_check CHECK (context_source IN ('signed_headers', 'custom_domain', 'subdomain', 'slug', 'cookie', 'none')),
    CONSTRAINT audit_logs_user_agent_len       CHECK (char_length(user_agent) <= 1000)   -- the engine truncates
);
CREATE INDEX audit_logs_tenant_id_created_at_idx          ON audit_logs (tenant_id, created_at DESC);
CREATE INDEX audit_logs_collection_doc_id_created_at_idx  ON audit_logs (collection, doc_id, created_at DESC);
CREATE INDEX audit_logs_actor_user_id_created_at_idx      ON audit_logs (actor_user_id, created_at DESC);
CREATE INDEX audit_logs_request_id_idx                    ON audit_logs (request_id);
-- rows arrive in time order, so a BRIN index is tiny and serves range scans and retention purges
CREATE INDEX audit_logs_created_at_idx                    ON audit_logs USING brin (created_at);

-- Append-only. cityos_app has no UPDATE/DELETE privilege at all; this trigger also stops the owner
-- and superusers by accident. The retention purge (run as the owner) opts in explicitly:
--   BEGIN; SET LOCAL cityos.audit_purge = 'on'; DELETE FROM audit_logs WHERE created_at < …; COMMIT;
-- UPDATE is never allowed.
CREATE OR REPLACE FUNCTION cityos_audit_logs_append_only() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('cityos.audit_purge', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Retention purges run as the owner with SET LOCAL cityos.audit_purge = ''on''.';
END
$$;
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION cityos_audit_logs_append_only();

-- Attached like everywhere else for uniformity; it can never fire past the trigger above.
CREATE TRIGGER audit_logs_set_updated_at BEFORE UPDATE ON audit_logs FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();

GRANT SELECT, INSERT ON audit_logs TO cityos_app;

-- =============================================================================================
-- Unique constraint → wire field path (collection · path). The engine maps a unique_violation's
-- constraint name to a "Value must be unique" ValidationError on this path. N = array row index.
-- Every table's "<table>_pkey" maps to `id`.
-- =============================================================================================
-- countries_code_key                                       → countries · code
-- scopes_country_id_scope_type_name_key                    → scopes · name
-- categories_scope_id_name_key                             → categories · name
-- subcategories_category_id_name_key                       → subcategories · name
-- tenants_handle_key                                       → tenants · handle
-- tenants_medusa_tenant_id_key                             → tenants · medusaTenantId
-- stores_tenant_id_handle_key                              → stores · handle
-- stores_tenant_id_id_key                                  → stores · id (FK target only; cannot clash on its own)
-- domains_kind_hostname_key                                → tenants|stores · subdomains.N.subdomain (kind subdomain)
--                                                            or customDomains.N.domain (kind custom); message "already in use"
-- domains_tenant_id_store_id_kind_key                      → tenants|stores · subdomains.N.isPrimary (kind subdomain)
--                                                            or customDomains.N.isPrimary (kind custom)
-- portals_tenant_id_store_id_base_path_key                 → portals · basePath
-- users_email_key                                          → users · email
-- users_external_auth_provider_external_user_id_key        → users · externalUserId
-- user_tenant_memberships_user_id_tenant_id_store_id_key   → users · tenantMemberships.N.tenant
-- api_keys_prefix_key                                      → api-keys · prefix (generated: regenerate and retry)
-- media_tenant_id_filename_key                             → media · filename (uploads retry with -1, -2, …)
-- pages_tenant_id_store_id_slug_key                        → pages · slug
-- posts_tenant_id_store_id_slug_key                        → posts · slug
-- product_content_tenant_id_medusa_product_id_key          → product-content · medusaProductId
-- integration_endpoints_tenant_id_store_id_system_type_key → integration-endpoints · systemType
-- webhook_logs_request_id_key                              → webhook-logs · requestId
-- webhook_logs_system_type_external_event_id_key           → webhook-logs · externalEventId (redelivery: store as duplicate)
-- sync_jobs_tenant_id_idempotency_key_key                  → sync-jobs · idempotencyKey
-- sync_jobs_tenant_id_job_type_source_key                  → sync-jobs · sourceDocId (a queued job exists: coalesce)
