-- 0011 · row-level security by tenant.
--
-- Requests and jobs run as cityos_app (SET LOCAL ROLE via set_config('role', …, true)) inside a
-- transaction that first sets cityos.tenant_id, cityos.user_id and cityos.all_tenants; these
-- policies read them, so a query that forgets its tenant filter still sees one tenant only.
-- FORCE applies the policies to the tables' owner too; superusers (migrations, seeds, internal
-- identity lookups that run without SET ROLE) bypass RLS as PostgreSQL always lets them.

-- The standard policy: the resolved tenant's rows, or everything for super admins and system work.
-- Rows with a NULL tenant (platform keys, logs of unknown senders) need all_tenants.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['stores', 'portals', 'domains', 'pages', 'posts', 'product_content',
                             'integration_endpoints', 'api_keys', 'webhook_logs', 'sync_jobs']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY %I ON %I USING (cityos_all_tenants() OR tenant_id = cityos_tenant_id())
                                   WITH CHECK (cityos_all_tenants() OR tenant_id = cityos_tenant_id())',
            t || '_tenant_isolation', t);
    END LOOP;
END
$$;

-- media: public media (NULL tenant) is readable by everyone; writing it needs all_tenants.
ALTER TABLE media ENABLE ROW LEVEL SECURITY;
ALTER TABLE media FORCE ROW LEVEL SECURITY;
CREATE POLICY media_read ON media FOR SELECT
    USING (cityos_all_tenants() OR tenant_id IS NULL OR tenant_id = cityos_tenant_id());
CREATE POLICY media_insert ON media FOR INSERT
    WITH CHECK (cityos_all_tenants() OR tenant_id = cityos_tenant_id());
CREATE POLICY media_update ON media FOR UPDATE
    USING (cityos_all_tenants() OR tenant_id = cityos_tenant_id())
    WITH CHECK (cityos_all_tenants() OR tenant_id = cityos_tenant_id());
CREATE POLICY media_delete ON media FOR DELETE
    USING (cityos_all_tenants() OR tenant_id = cityos_tenant_id());

-- audit_logs: read like any tenant table; every change may record its row (a platform action
-- has a NULL tenant), so inserts are not limited to the resolved tenant's NULL-free rows.
ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_logs_read ON audit_logs FOR SELECT
    USING (cityos_all_tenants() OR tenant_id = cityos_tenant_id());
CREATE POLICY audit_logs_insert ON audit_logs FOR INSERT
    WITH CHECK (cityos_all_tenants() OR tenant_id IS NULL OR tenant_id = cityos_tenant_id());

-- user_tenant_memberships: the tenant's rows, and the user's own.
ALTER TABLE user_tenant_memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_tenant_memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY user_tenant_memberships_isolation ON user_tenant_memberships
    USING (cityos_all_tenants() OR tenant_id = cityos_tenant_id() OR user_id = cityos_user_id())
    WITH CHECK (cityos_all_tenants() OR tenant_id = cityos_tenant_id());

-- tenants: the resolved tenant, and the tenants the user belongs to; writes only the resolved one.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_read ON tenants FOR SELECT
    USING (cityos_all_tenants() OR id = cityos_tenant_id()
           OR EXISTS (SELECT 1 FROM user_tenant_memberships m
                      WHERE m.tenant_id = tenants.id AND m.user_id = cityos_user_id() AND m.status = 'active'));
CREATE POLICY tenants_insert ON tenants FOR INSERT WITH CHECK (cityos_all_tenants());
CREATE POLICY tenants_update ON tenants FOR UPDATE
    USING (cityos_all_tenants() OR id = cityos_tenant_id())
    WITH CHECK (cityos_all_tenants() OR id = cityos_tenant_id());
CREATE POLICY tenants_delete ON tenants FOR DELETE USING (cityos_all_tenants());

-- users: oneself, and the users with a membership in the resolved tenant.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_isolation ON users
    USING (cityos_all_tenants() OR id = cityos_user_id()
           OR EXISTS (SELECT 1 FROM user_tenant_memberships m
                      WHERE m.user_id = users.id AND m.tenant_id = cityos_tenant_id()))
    WITH CHECK (cityos_all_tenants() OR id = cityos_user_id()
           OR EXISTS (SELECT 1 FROM user_tenant_memberships m
                      WHERE m.user_id = users.id AND m.tenant_id = cityos_tenant_id()));
