-- 0017 · outbound events: no INSERT at all when no endpoint subscribes.
--
-- Every engine write calls cityos_enqueue_events (0013). Its INSERT … SELECT of zero rows still
-- fired the statement-level `NOTIFY cityos_jobs` trigger of sync_jobs, and transactions that
-- NOTIFY commit one at a time (PostgreSQL holds the notification queue's lock through the
-- commit's disk flush): every content write queued behind the previous one's flush. The common
-- case — nobody subscribes — is now one indexed lookup and no write.
CREATE OR REPLACE FUNCTION cityos_enqueue_events(p_tenant uuid, p_events text[], p_collection text,
                                                 p_doc_id text, p_msg_ids text[], p_bodies jsonb[])
    RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    prev text := current_setting('cityos.all_tenants', true);
    n integer := 0;
BEGIN
    PERFORM set_config('cityos.all_tenants', 'on', true);
    IF EXISTS (SELECT 1 FROM integration_endpoints e
                WHERE e.tenant_id = p_tenant AND e.enabled AND e.system_type IN ('notifications', 'custom')
                  AND e.events && (p_events || '*'::text)) THEN
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
    END IF;
    PERFORM set_config('cityos.all_tenants', coalesce(prev, ''), true);
    RETURN n;
    -- On an error the setting is rolled back with the (sub)transaction: no handler needed.
END;
$$;
