-- 0001 · extensions, shared trigger functions, RLS helpers, runtime role.
--
-- Runs as the owning (migration) role, which must be allowed to CREATE EXTENSION postgis
-- (a superuser in practice: postgis and vector are not "trusted" extensions).

CREATE EXTENSION IF NOT EXISTS postgis;   -- stores.location
CREATE EXTENSION IF NOT EXISTS vector;    -- embedding vector(768); HNSW needs pgvector >= 0.5
CREATE EXTENSION IF NOT EXISTS pg_trgm;   -- GIN (title gin_trgm_ops) for like/contains

-- ---------------------------------------------------------------------------------------------
-- Runtime role. Roles are cluster-wide while every test database runs these migrations, so the
-- role is created only when missing, and a concurrent creator winning the race is not an error
-- (it surfaces as duplicate_object, or unique_violation on pg_authid).
-- NOLOGIN: a login role is granted membership and does SET ROLE cityos_app.
-- NOBYPASSRLS and owning nothing: row-level security always applies to it.
-- ---------------------------------------------------------------------------------------------
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cityos_app') THEN
        BEGIN
            CREATE ROLE cityos_app NOLOGIN NOINHERIT NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO cityos_app;

-- ---------------------------------------------------------------------------------------------
-- Request context. Each request/job transaction sets these with set_config(…, true). A custom
-- setting that was never set reads as NULL (missing_ok), one that was set earlier in the session
-- reads as '' after its transaction ended: both mean "none".
-- STABLE + PARALLEL SAFE (like current_setting) so policies calling them stay cheap and parallel.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION cityos_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT NULLIF(current_setting('cityos.tenant_id', true), '')::uuid $$;

CREATE OR REPLACE FUNCTION cityos_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT NULLIF(current_setting('cityos.user_id', true), '')::uuid $$;

-- Never NULL: anything but the exact value 'on' is "off", so a policy cannot be opened by accident.
CREATE OR REPLACE FUNCTION cityos_all_tenants() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT coalesce(current_setting('cityos.all_tenants', true), '') = 'on' $$;

-- CHECK helper for scalar lists whose values follow a pattern rather than an enumeration
-- (api_keys.scopes, integration_endpoints.events). A NULL element never matches.
CREATE OR REPLACE FUNCTION cityos_text_array_all_match(arr text[], pattern text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT coalesce(bool_and(coalesce(e ~ pattern, false)), true) FROM unnest(arr) AS e $$;

GRANT EXECUTE ON FUNCTION cityos_tenant_id(), cityos_user_id(), cityos_all_tenants(),
    cityos_text_array_all_match(text[], text) TO cityos_app;

-- ---------------------------------------------------------------------------------------------
-- Shared trigger functions.
-- ---------------------------------------------------------------------------------------------

-- updatedAt is read-only on the wire; the database owns it. Attached BEFORE UPDATE to every table
-- as the trigger "<table>_set_updated_at".
CREATE OR REPLACE FUNCTION cityos_set_updated_at() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- Statement-level: one notification per statement, and PostgreSQL folds identical notifications of
-- one transaction into one, so a bulk change costs a single cache flush on every instance.
-- The payload is the table name; listeners only need "something in the host map changed".
CREATE OR REPLACE FUNCTION cityos_notify_context() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('cityos_context', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
