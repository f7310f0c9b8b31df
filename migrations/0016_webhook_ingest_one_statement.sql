-- 0016 · integration plane: an accepted webhook delivery in one statement, the endpoint-secret
-- cache's NOTIFY, and enqueues whose NOTIFY the server coalesces.

-- Every instance caches its integration endpoints' decrypted webhook secrets
-- (src/integrations/secrets.rs) and drops them on this notification. Only the columns a cached
-- secret depends on fire it (health checks and the like do not).
CREATE OR REPLACE FUNCTION cityos_notify_integrations() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('cityos_integrations', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER integration_endpoints_notify_integrations
    AFTER INSERT OR UPDATE OF tenant_id, store_id, system_type, enabled, webhook_secret_enc,
                              previous_webhook_secret_enc, previous_webhook_secret_expires_at
          OR DELETE OR TRUNCATE ON integration_endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION cityos_notify_integrations();

-- NOTIFY cityos_jobs is skipped for an insert whose transaction set cityos.jobs_notify_deferred:
-- the server then wakes its own workers directly after the commit and sends one NOTIFY for all
-- the inserts of a short interval (src/integrations/mod.rs). A NOTIFY per insert serialises the
-- committing transactions on the notification queue's lock and costs every listening backend of
-- the database a signal and a queue read; at webhook rates that was a third of PostgreSQL's CPU.
CREATE OR REPLACE FUNCTION cityos_notify_jobs() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF current_setting('cityos.jobs_notify_deferred', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('cityos_jobs', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

-- A verified inbound delivery: its log row and its process_webhook job, or a `duplicate` row
-- pointing at the first delivery (same source and event id). Called outside a transaction, so
-- the call is the whole transaction: one round trip, committed before the 200.
--
-- p_confirm: the secret that verified the delivery came from the caller's cache. The call then
-- re-checks it against the table in this very statement (the endpoint still enabled, with that
-- tenant and store, and that exact encrypted secret — or that previous secret inside its grace
-- period; for an env secret and a named tenant, that the tenant still has no secret of its own)
-- and answers `stale` without writing anything when it no longer holds: a secret rotated or
-- removed on another instance is never accepted from a cache that has not heard of it yet.
CREATE OR REPLACE FUNCTION cityos_accept_webhook(
    p_request_id text, p_system_type text, p_tenant uuid, p_store uuid, p_store_hint text,
    p_endpoint uuid, p_event_type text, p_external_id text, p_hash text, p_url text,
    p_headers jsonb, p_body bytea, p_max_attempts integer, p_defer_notify boolean,
    p_confirm boolean, p_confirm_enc bytea, p_confirm_previous boolean,
    OUT log_id uuid, OUT duplicate boolean, OUT stale boolean)
    LANGUAGE plpgsql AS $$
DECLARE
    prev text := current_setting('cityos.all_tenants', true);
    v_store uuid := p_store;
    v_request text := p_request_id;
BEGIN
    duplicate := false;
    stale := false;
    -- The server's own rows (RLS is forced on both tables).
    PERFORM set_config('cityos.all_tenants', 'on', true);
    IF p_confirm AND p_endpoint IS NOT NULL THEN
        PERFORM 1 FROM integration_endpoints e
          WHERE e.id = p_endpoint AND e.system_type = p_system_type AND e.enabled
            AND e.tenant_id = p_tenant AND e.store_id IS NOT DISTINCT FROM p_store
            AND CASE WHEN p_confirm_previous
                     THEN e.previous_webhook_secret_enc = p_confirm_enc
                          AND e.previous_webhook_secret_expires_at > now()
                     ELSE e.webhook_secret_enc = p_confirm_enc END;
        stale := NOT FOUND;
    ELSIF p_confirm AND p_tenant IS NOT NULL THEN
        stale := EXISTS (SELECT 1 FROM integration_endpoints e
                          WHERE e.system_type = p_system_type AND e.enabled
                            AND e.webhook_secret_enc IS NOT NULL AND e.tenant_id = p_tenant);
    END IF;
    IF stale THEN
        PERFORM set_config('cityos.all_tenants', coalesce(prev, ''), true);
        RETURN;
    END IF;
    IF v_store IS NULL AND p_tenant IS NOT NULL AND p_store_hint IS NOT NULL THEN
        SELECT s.id INTO v_store FROM stores s
         WHERE s.tenant_id = p_tenant AND (s.id::text = p_store_hint OR s.handle = p_store_hint) LIMIT 1;
    END IF;
    -- A client-supplied request id may repeat: the row then gets a suffix (the column is unique).
    IF EXISTS (SELECT 1 FROM webhook_logs WHERE request_id = p_request_id) THEN
        v_request := p_request_id || '.' || substr(md5(random()::text), 1, 8);
    END IF;
    INSERT INTO webhook_logs (request_id, system_type, direction, tenant_id, store_id, endpoint_id,
                              event_type, external_event_id, payload_hash, signature_valid, status,
                              attempts, url, headers, raw_body, response_code)
    VALUES (v_request, p_system_type, 'inbound', p_tenant, v_store, p_endpoint, p_event_type,
            p_external_id, p_hash, true, 'received', 0, p_url, p_headers, p_body, 200)
    ON CONFLICT (system_type, external_event_id)
       WHERE direction = 'inbound' AND signature_valid AND duplicate_of_id IS NULL
    DO NOTHING
    RETURNING id INTO log_id;
    IF log_id IS NOT NULL THEN
        IF p_defer_notify THEN
            PERFORM set_config('cityos.jobs_notify_deferred', 'on', true);
        END IF;
        INSERT INTO sync_jobs (job_type, tenant_id, store_id, source_collection, source_doc_id,
                               target_system, webhook_log_id, payload, idempotency_key, max_attempts)
        VALUES ('process_webhook', p_tenant, v_store, 'webhook-logs', log_id::text, 'payload', log_id,
                jsonb_build_object('source', p_system_type, 'eventType', p_event_type),
                'process_webhook:' || log_id, p_max_attempts);
        PERFORM set_config('cityos.jobs_notify_deferred', '', true);
    ELSE
        duplicate := true;
        SELECT w.id INTO log_id FROM webhook_logs w
         WHERE w.system_type = p_system_type AND w.external_event_id = p_external_id
           AND w.direction = 'inbound' AND w.signature_valid AND w.duplicate_of_id IS NULL;
        INSERT INTO webhook_logs (request_id, system_type, direction, tenant_id, store_id, endpoint_id,
                                  event_type, external_event_id, payload_hash, signature_valid, status,
                                  attempts, url, headers, raw_body, response_code, duplicate_of_id)
        VALUES (v_request, p_system_type, 'inbound', p_tenant, v_store, p_endpoint, p_event_type,
                p_external_id, p_hash, true, 'duplicate', 0, p_url, p_headers, p_body, 200, log_id);
    END IF;
    PERFORM set_config('cityos.all_tenants', coalesce(prev, ''), true);
END;
$$;

-- Only the server (the owning role) calls it; a request's role must not write log rows.
REVOKE EXECUTE ON FUNCTION cityos_accept_webhook(text, text, uuid, uuid, text, uuid, text, text, text,
    text, jsonb, bytea, integer, boolean, boolean, bytea, boolean) FROM PUBLIC;
