-- 0014 · row-level security evaluated once per statement, and the all-tenants list order.
--
-- The policies of 0011 call cityos_all_tenants() / cityos_tenant_id() / cityos_user_id(), which
-- PostgreSQL inlines and evaluates for every row: a super admin's count over 20,000 pages spent
-- most of its time reading the same settings 20,000 times, and the planner, unable to estimate
-- the call, guessed 100 rows. Wrapped in a scalar subquery each call becomes an InitPlan,
-- evaluated once per statement; the rows are compared with its value. The rule each policy states
-- is unchanged: only the calls are rewritten, by the same pattern, for every policy on the
-- tables of this schema.
DO $$
DECLARE
    p record;
    wrap constant text := '(?<!SELECT )cityos_(all_tenants|tenant_id|user_id)\(\)';
    using_clause text;
    check_clause text;
BEGIN
    FOR p IN SELECT schemaname, tablename, policyname, qual, with_check
               FROM pg_policies WHERE schemaname = current_schema()
    LOOP
        using_clause := regexp_replace(p.qual, wrap, '(SELECT cityos_\1())', 'g');
        check_clause := regexp_replace(p.with_check, wrap, '(SELECT cityos_\1())', 'g');
        IF using_clause IS NOT NULL THEN
            EXECUTE format('ALTER POLICY %I ON %I.%I USING (%s)', p.policyname, p.schemaname, p.tablename,
                           using_clause);
        END IF;
        IF check_clause IS NOT NULL THEN
            EXECUTE format('ALTER POLICY %I ON %I.%I WITH CHECK (%s)', p.policyname, p.schemaname,
                           p.tablename, check_clause);
        END IF;
    END LOOP;
END
$$;

-- The admin's (and a platform key's) list across all tenants sorts by the collections' default
-- `-createdAt` without a tenant prefix: these let it read the first page in order instead of
-- sorting every row. Tenant lists keep the (tenant_id, created_at DESC, id DESC) indexes.
CREATE INDEX pages_created_at_id_idx           ON pages           (created_at DESC, id DESC);
CREATE INDEX posts_created_at_id_idx           ON posts           (created_at DESC, id DESC);
CREATE INDEX media_created_at_id_idx           ON media           (created_at DESC, id DESC);
CREATE INDEX product_content_created_at_id_idx ON product_content (created_at DESC, id DESC);
CREATE INDEX audit_logs_created_at_id_idx      ON audit_logs      (created_at DESC, id DESC);
