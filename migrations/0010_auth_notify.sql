-- 0010 · NOTIFY cityos_auth when anything a cached principal depends on changes.
--
-- Each instance caches resolved principals (session, Keycloak subject, API key) and drops them on
-- this notification, so a revoked key, a logged-out session, a disabled user or a changed
-- membership stops working at once everywhere. The triggers fire only for the columns that
-- matter: the batched usage counters of api_keys and the login counters of users do not.
CREATE OR REPLACE FUNCTION cityos_notify_auth() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('cityos_auth', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_notify_auth
    AFTER UPDATE OF status, global_roles, email, name OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION cityos_notify_auth();
CREATE TRIGGER user_tenant_memberships_notify_auth
    AFTER INSERT OR UPDATE OR DELETE ON user_tenant_memberships
    FOR EACH STATEMENT EXECUTE FUNCTION cityos_notify_auth();
CREATE TRIGGER user_sessions_notify_auth
    AFTER UPDATE OF revoked_at, expires_at OR DELETE ON user_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION cityos_notify_auth();
CREATE TRIGGER api_keys_notify_auth
    AFTER UPDATE OF status, expires_at, scopes, tenant_id, store_id, key_hash, owner_type, owner_ref OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION cityos_notify_auth();
