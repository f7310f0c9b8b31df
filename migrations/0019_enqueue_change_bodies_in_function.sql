-- 0019 · outbound events of a change: the bodies are built inside the function.
--
-- An engine write's statement called cityos_enqueue_events (0013, 0017) with the event bodies
-- as an ARRAY(SELECT … FROM unnest(…)) argument. PostgreSQL initialises that subquery at the
-- start of every execution, whether or not anybody subscribes (the common case, which the
-- statement now tests first with an indexed EXISTS): a tenth of a create's PostgreSQL time.
-- Here the statement passes the one `data` document and the function builds the bodies only
-- when it inserts. Same rows, same idempotency keys as 0017.
--
-- Deliveries no longer coalesce. The queued-job unique index of 0007 merges repeated edits of
-- one document into one sync job; it covered deliver_webhook jobs too, so a change raising two
-- events (created + published), a change two endpoints subscribe to, or a second edit while
-- the first one's delivery was still queued failed the editor's write with a unique
-- violation. Every delivery is a message of its own (its idempotency key names the endpoint
-- and the message id).
CREATE OR REPLACE FUNCTION cityos_enqueue_change(p_tenant uuid, p_events text[], p_collection text,
                                                 p_doc_id text, p_msg_ids text[], p_timestamp text,
                                                 p_data jsonb)
    RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    prev text := current_setting('cityos.all_tenants', true);
    n integer := 0;
BEGIN
    PERFORM set_config('cityos.all_tenants', 'on', true);
    INSERT INTO sync_jobs (job_type, tenant_id, source_collection, source_doc_id, target_system, target_id,
                           payload, idempotency_key)
    SELECT 'deliver_webhook', e.tenant_id, p_collection, p_doc_id, e.system_type, e.id::text,
           jsonb_build_object('msgId', ev.msg_id, 'event', ev.event,
                              'body', jsonb_build_object('type', ev.event, 'timestamp', p_timestamp,
                                                         'data', p_data)),
           'deliver_webhook:' || e.id || ':' || ev.msg_id
      FROM unnest(p_events, p_msg_ids) AS ev(event, msg_id)
      JOIN integration_endpoints e
        ON e.tenant_id = p_tenant AND e.enabled AND e.system_type IN ('notifications', 'custom')
       AND e.events && ARRAY[ev.event, '*'];
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM set_config('cityos.all_tenants', coalesce(prev, ''), true);
    RETURN n;
END;
$$;

DROP FUNCTION cityos_enqueue_events(uuid, text[], text, text, text[], jsonb[]);

DROP INDEX sync_jobs_tenant_id_job_type_source_key;
CREATE UNIQUE INDEX sync_jobs_tenant_id_job_type_source_key
    ON sync_jobs (tenant_id, job_type, source_collection, source_doc_id) NULLS NOT DISTINCT
    WHERE status = 'queued' AND job_type <> 'deliver_webhook';
