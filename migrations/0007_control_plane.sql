-- 0007 · integration control plane: integration_endpoints, webhook_logs, sync_jobs.
--
-- RLS shape: all three carry tenant_id. webhook_logs and sync_jobs allow NULL tenant (unknown
-- senders, platform jobs), visible only with cityos_all_tenants().

-- ---------------------------------------------------------------------------------------------
-- integration_endpoints
-- Secrets (*_enc) are AES-256-GCM: key-version byte ‖ nonce ‖ ciphertext ‖ tag. Never returned.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE integration_endpoints (
    id                                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name                               text        NOT NULL,
    tenant_id                          uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    store_id                           uuid,       -- NULL = whole tenant
    system_type                        text        NOT NULL,
    base_url                           text        NOT NULL,  -- http(s); "https in production" is the engine's check
    auth_type                          text        NOT NULL DEFAULT 'none',
    secret_ref                         text,
    auth_secret_enc                    bytea,
    webhook_secret_enc                 bytea,
    previous_webhook_secret_enc        bytea,
    previous_webhook_secret_expires_at timestamptz,
    events                             text[]      NOT NULL DEFAULT '{}',
    enabled                            boolean     NOT NULL DEFAULT true,
    timeout_ms                         integer     NOT NULL DEFAULT 10000,
    config                             jsonb,
    health_check_last_check_at         timestamptz,
    health_check_status                text        NOT NULL DEFAULT 'unknown',
    health_check_last_error            text,
    metadata                           jsonb,
    created_at                         timestamptz NOT NULL DEFAULT now(),
    updated_at                         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT integration_endpoints_store_id_fkey FOREIGN KEY (tenant_id, store_id)
        REFERENCES stores (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT integration_endpoints_name_len                CHECK (char_length(name) <= 200),
    CONSTRAINT integration_endpoints_system_type_check       CHECK (system_type IN ('medusa', 'fleetbase', 'erpnext', 'notifications', 'custom')),
    CONSTRAINT integration_endpoints_base_url_len            CHECK (char_length(base_url) <= 10000),
    CONSTRAINT integration_endpoints_auth_type_check         CHECK (auth_type IN ('api_key', 'bearer', 'basic', 'none')),
    CONSTRAINT integration_endpoints_secret_ref_len          CHECK (char_length(secret_ref) <= 10000),
    -- <collection>.<created|updated|deleted|published>, sync-jobs.dead, or *
    CONSTRAINT integration_endpoints_events_check            CHECK (cityos_text_array_all_match(events,
        '^(?:\*|sync-jobs\.dead|[a-z][a-z0-9-]*\.(?:created|updated|deleted|published))$')),
    CONSTRAINT integration_endpoints_timeout_ms_range        CHECK (timeout_ms BETWEEN 100 AND 60000),
    CONSTRAINT integration_endpoints_health_check_status_check CHECK (health_check_status IN ('healthy', 'degraded', 'unhealthy', 'unknown')),
    CONSTRAINT integration_endpoints_health_check_last_error_len CHECK (char_length(health_check_last_error) <= 10000)
);
CREATE INDEX integration_endpoints_tenant_id_created_at_idx          ON integration_endpoints (tenant_id, created_at DESC);
CREATE INDEX integration_endpoints_tenant_id_system_type_enabled_idx ON integration_endpoints (tenant_id, system_type, enabled);
CREATE INDEX integration_endpoints_store_id_idx                      ON integration_endpoints (store_id);
CREATE INDEX integration_endpoints_events_idx                        ON integration_endpoints USING gin (events);
-- (design) one live connection per commerce/logistics/ERP system and scope (tenant, or tenant + store)
CREATE UNIQUE INDEX integration_endpoints_tenant_id_store_id_system_type_key
    ON integration_endpoints (tenant_id, store_id, system_type) NULLS NOT DISTINCT
    WHERE enabled AND system_type IN ('medusa', 'fleetbase', 'erpnext');

-- ---------------------------------------------------------------------------------------------
-- webhook_logs — every delivery, inbound and outbound. Rows outlive their tenant/store/endpoint
-- (SET NULL everywhere).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE webhook_logs (
    id                    uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    request_id            text        NOT NULL,
    system_type           text        NOT NULL,
    direction             text        NOT NULL,
    tenant_id             uuid        REFERENCES tenants (id) ON DELETE SET NULL,
    store_id              uuid,
    endpoint_id           uuid        REFERENCES integration_endpoints (id) ON DELETE SET NULL,
    event_type            text        NOT NULL DEFAULT 'unknown',
    external_event_id     text,
    duplicate_of_id       uuid        REFERENCES webhook_logs (id) ON DELETE SET NULL,
    payload_hash          char(64),
    signature_valid       boolean,    -- NULL for outbound
    status                text        NOT NULL DEFAULT 'received',
    attempts              integer     NOT NULL DEFAULT 1,
    next_retry_at         timestamptz,
    processed_at          timestamptz,
    url                   text,
    headers               jsonb,
    raw_body              bytea,
    response_code         integer,
    response_body_snippet text,
    error_message         text,
    metadata              jsonb,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_logs_store_id_fkey FOREIGN KEY (tenant_id, store_id)
        REFERENCES stores (tenant_id, id) ON DELETE SET NULL (store_id),
    -- the composite FK is not checked while tenant_id is NULL, so a NULL-tenant row has no store
    CONSTRAINT webhook_logs_store_id_requires_tenant CHECK (tenant_id IS NOT NULL OR store_id IS NULL),
    CONSTRAINT webhook_logs_request_id_len            CHECK (char_length(request_id) <= 10000),
    CONSTRAINT webhook_logs_system_type_check         CHECK (system_type IN ('medusa', 'fleetbase', 'erpnext', 'notifications', 'custom')),
    CONSTRAINT webhook_logs_direction_check           CHECK (direction IN ('inbound', 'outbound')),
    CONSTRAINT webhook_logs_event_type_len            CHECK (char_length(event_type) <= 10000),
    CONSTRAINT webhook_logs_external_event_id_len     CHECK (char_length(external_event_id) <= 10000),
    CONSTRAINT webhook_logs_payload_hash_format       CHECK (payload_hash ~ '^[0-9a-f]{64}$'),
    -- extended from the original (success, failed, retrying; default success)
    CONSTRAINT webhook_logs_status_check              CHECK (status IN ('received', 'success', 'retrying', 'failed', 'dead', 'duplicate')),
    CONSTRAINT webhook_logs_attempts_range            CHECK (attempts >= 0),
    CONSTRAINT webhook_logs_url_len                   CHECK (char_length(url) <= 10000),
    CONSTRAINT webhook_logs_raw_body_size             CHECK (octet_length(raw_body) <= 1048576),  -- 1 MiB
    CONSTRAINT webhook_logs_response_code_range       CHECK (response_code BETWEEN 100 AND 599),
    CONSTRAINT webhook_logs_response_body_snippet_len CHECK (char_length(response_body_snippet) <= 1000),
    CONSTRAINT webhook_logs_error_message_len         CHECK (char_length(error_message) <= 10000),
    CONSTRAINT webhook_logs_request_id_key            UNIQUE (request_id)
);
-- idempotency of inbound deliveries: a redelivery conflicts here and is stored as 'duplicate'
-- with duplicate_of_id set (which takes it out of the index)
CREATE UNIQUE INDEX webhook_logs_system_type_external_event_id_key ON webhook_logs (system_type, external_event_id)
    WHERE direction = 'inbound' AND signature_valid AND duplicate_of_id IS NULL;
CREATE INDEX webhook_logs_tenant_id_created_at_idx ON webhook_logs (tenant_id, created_at DESC);
CREATE INDEX webhook_logs_next_retry_at_idx        ON webhook_logs (next_retry_at) WHERE status = 'retrying';
CREATE INDEX webhook_logs_payload_hash_idx         ON webhook_logs (payload_hash);
CREATE INDEX webhook_logs_endpoint_id_idx          ON webhook_logs (endpoint_id);
CREATE INDEX webhook_logs_store_id_idx             ON webhook_logs (store_id);
CREATE INDEX webhook_logs_duplicate_of_id_idx      ON webhook_logs (duplicate_of_id);

-- When the tenant goes, its SET NULL on tenant_id runs before the store's SET NULL (store_id)
-- action, which (matching on tenant_id, store_id) would then miss the row and leave a store id
-- without its tenant (and violate webhook_logs_store_id_requires_tenant). Clear both at once.
CREATE OR REPLACE FUNCTION cityos_webhook_logs_clear_store() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.tenant_id IS NULL THEN
        NEW.store_id := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER webhook_logs_clear_store BEFORE UPDATE OF tenant_id ON webhook_logs
    FOR EACH ROW WHEN (NEW.tenant_id IS NULL AND OLD.tenant_id IS NOT NULL)
    EXECUTE FUNCTION cityos_webhook_logs_clear_store();

-- ---------------------------------------------------------------------------------------------
-- sync_jobs — the job queue (transactional outbox). Claim:
--   … WHERE status = 'queued' AND run_after <= now() ORDER BY run_after LIMIT n FOR UPDATE SKIP LOCKED
-- ---------------------------------------------------------------------------------------------
CREATE TABLE sync_jobs (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    job_type          text        NOT NULL,
    status            text        NOT NULL DEFAULT 'queued',
    tenant_id         uuid        REFERENCES tenants (id) ON DELETE CASCADE,   -- NULL = platform job
    store_id          uuid,
    source_collection text,
    source_doc_id     text,       -- a local uuid or an external id (prod_…)
    target_system     text,
    target_id         text,
    webhook_log_id    uuid        REFERENCES webhook_logs (id) ON DELETE SET NULL,
    payload           jsonb,
    idempotency_key   text        NOT NULL,   -- derived by the engine: {jobType}:{sourceCollection}:{sourceDocId}:{source updatedAt}
    attempts          integer     NOT NULL DEFAULT 0,
    max_attempts      integer     NOT NULL DEFAULT 8,
    run_after         timestamptz NOT NULL DEFAULT now(),
    locked_by         text,
    locked_at         timestamptz,
    lease_expires_at  timestamptz,
    started_at        timestamptz,
    finished_at       timestamptz,
    logs              jsonb       NOT NULL DEFAULT '[]',
    error_message     text,
    metadata          jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sync_jobs_store_id_fkey FOREIGN KEY (tenant_id, store_id)
        REFERENCES stores (tenant_id, id) ON DELETE SET NULL (store_id),
    -- the composite FK is not checked while tenant_id is NULL, so a NULL-tenant row has no store
    CONSTRAINT sync_jobs_store_id_requires_tenant CHECK (tenant_id IS NOT NULL OR store_id IS NULL),
    CONSTRAINT sync_jobs_job_type_check          CHECK (job_type IN ('payload_to_medusa', 'medusa_to_payload', 'reconcile', 'process_webhook', 'deliver_webhook')),
    CONSTRAINT sync_jobs_status_check            CHECK (status IN ('queued', 'running', 'success', 'failed', 'dead')),
    CONSTRAINT sync_jobs_source_collection_len   CHECK (char_length(source_collection) <= 10000),
    CONSTRAINT sync_jobs_source_doc_id_len       CHECK (char_length(source_doc_id) <= 10000),
    CONSTRAINT sync_jobs_target_system_check     CHECK (target_system IN ('medusa', 'payload', 'fleetbase', 'erpnext', 'notifications', 'custom')),
    CONSTRAINT sync_jobs_target_id_len           CHECK (char_length(target_id) <= 10000),
    CONSTRAINT sync_jobs_idempotency_key_len     CHECK (char_length(idempotency_key) <= 10000),
    CONSTRAINT sync_jobs_attempts_range          CHECK (attempts >= 0),
    CONSTRAINT sync_jobs_max_attempts_range      CHECK (max_attempts >= 1),
    CONSTRAINT sync_jobs_locked_by_len           CHECK (char_length(locked_by) <= 10000),
    CONSTRAINT sync_jobs_logs_array              CHECK (jsonb_typeof(logs) = 'array'),
    CONSTRAINT sync_jobs_error_message_len       CHECK (char_length(error_message) <= 10000),
    CONSTRAINT sync_jobs_tenant_id_idempotency_key_key UNIQUE NULLS NOT DISTINCT (tenant_id, idempotency_key)
);
CREATE INDEX sync_jobs_run_after_idx          ON sync_jobs (run_after) WHERE status = 'queued';          -- claim
CREATE INDEX sync_jobs_lease_expires_at_idx   ON sync_jobs (lease_expires_at) WHERE status = 'running';  -- reaper
CREATE INDEX sync_jobs_tenant_id_created_at_idx ON sync_jobs (tenant_id, created_at DESC);
CREATE INDEX sync_jobs_store_id_idx           ON sync_jobs (store_id);
CREATE INDEX sync_jobs_webhook_log_id_idx     ON sync_jobs (webhook_log_id);
-- repeated edits of one document coalesce into one queued job. The name shortens the column list:
-- the full "<table>_<cols>_key" would pass PostgreSQL's 63-byte identifier limit.
CREATE UNIQUE INDEX sync_jobs_tenant_id_job_type_source_key
    ON sync_jobs (tenant_id, job_type, source_collection, source_doc_id) NULLS NOT DISTINCT
    WHERE status = 'queued';

-- idle workers LISTEN cityos_jobs and wake at once instead of waiting for their next poll
CREATE OR REPLACE FUNCTION cityos_notify_jobs() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('cityos_jobs', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER sync_jobs_notify_jobs AFTER INSERT ON sync_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION cityos_notify_jobs();

CREATE TRIGGER integration_endpoints_set_updated_at BEFORE UPDATE ON integration_endpoints FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();
CREATE TRIGGER webhook_logs_set_updated_at          BEFORE UPDATE ON webhook_logs          FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();
CREATE TRIGGER sync_jobs_set_updated_at             BEFORE UPDATE ON sync_jobs             FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();

GRANT SELECT, INSERT, UPDATE, DELETE ON integration_endpoints, webhook_logs, sync_jobs TO cityos_app;
