-- 0013 · integration plane: webhook secret rotation, and the outbound-event enqueue function.
-- When an endpoint's webhook secret changes, the old one stays valid for 24 hours (data-model
-- 3.14: previousWebhookSecret / previousWebhookSecretExpiresAt), so senders can switch over.
-- Done in the database so every writer (API, CLI, SQL) gets the same rule.

CREATE OR REPLACE FUNCTION cityos_rotate_webhook_secret() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.webhook_secret_enc IS NOT NULL
       AND NEW.webhook_secret_enc IS DISTINCT FROM OLD.webhook_secret_enc THEN
        NEW.previous_webhook_secret_enc := OLD.webhook_secret_enc;
        NEW.previous_webhook_secret_expires_at := now() + interval '24 hours';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER integration_endpoints_rotate_webhook_secret
    BEFORE UPDATE OF webhook_secret_enc ON integration_endpoints
    FOR EACH ROW EXECUTE FUNCTION cityos_rotate_webhook_secret();

-- Outbound events: one deliver_webhook job per enabled notifications/custom endpoint of the
-- tenant that subscribes to one of `events` (or '*'), enqueued in the caller's transaction in one
-- round trip. The caller's transaction may not carry this tenant's RLS setting (a user of several
-- tenants); the jobs are the server's own rows, so the function widens the setting for its own
-- statement and restores it.
CREATE OR REPLACE FUNCTION cityos_enqueue_events(p_tenant uuid, p_events text[], p_collection text,
                                                 p_doc_id text, p_msg_ids text[], p_bodies jsonb[])
    RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    prev text := current_setting('cityos.all_tenants', true);
    n integer;
BEGIN
    PERFORM set_config('cityos.all_tenants', 'on', true);
    INSERT INTO sync_jobs (job_type, tenant_id, source_collection, source_doc_id, target_system, target_id,
                           payload, idempotency_key)
    SELECT 'deliver_webhook', e.tenant_id, p_collection, p_doc_id, e.system_type, e.id::text,
           jsonb_build_object('msgId', ev.msg_id, 'event', ev.event, 'body', ev.body),
           'deliver_webhook:' || e.id || ':' || ev.msg_id
      FROM unnest(p_events, p_msg_ids, p_bodies) AS ev(event, msg_id, body)
      JOIN integration_endpoints e
        ON e.tenant_id = p_tenant AND e.enabled AND e.system_type IN ('notifications', 'custom')
       AND e.events && ARRAY[ev.event, '*'];
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM set_config('cityos.all_tenants', coalesce(prev, ''), true);
    RETURN n;
    -- On an error the setting is rolled back with the (sub)transaction: no handler needed.
END;
$$;
