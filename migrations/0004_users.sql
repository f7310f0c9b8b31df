-- 0004 · users (global identities), their tenant memberships (child table) and local sessions.
--
-- RLS shape: users has no tenant_id; its policy will look through user_tenant_memberships
-- (tenant_id, user_id). Memberships carry tenant_id and are visible to their tenant and their user.

CREATE TABLE users (
    id                     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email                  text        NOT NULL,
    name                   text,
    external_auth_provider text        NOT NULL DEFAULT 'keycloak',
    external_user_id       text,
    status                 text        NOT NULL DEFAULT 'active',
    global_roles           text[]      NOT NULL DEFAULT '{}',
    password_hash          text,       -- H: argon2id PHC string, local users only
    login_attempts         integer     NOT NULL DEFAULT 0,   -- H: login throttling
    lock_until             timestamptz,                      -- H
    last_login_at          timestamptz,
    preferences            jsonb,
    metadata               jsonb,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_len                     CHECK (char_length(email) <= 10000),
    CONSTRAINT users_email_lower                   CHECK (email = lower(email)),
    CONSTRAINT users_name_len                      CHECK (char_length(name) <= 200),
    CONSTRAINT users_external_auth_provider_check  CHECK (external_auth_provider IN ('keycloak', 'oidc', 'local')),
    CONSTRAINT users_external_user_id_len          CHECK (char_length(external_user_id) <= 10000),
    -- "required unless local": federated identities are upserted on (provider, external id)
    CONSTRAINT users_external_user_id_required     CHECK (external_auth_provider = 'local' OR external_user_id IS NOT NULL),
    CONSTRAINT users_status_check                  CHECK (status IN ('active', 'disabled')),
    CONSTRAINT users_global_roles_check            CHECK (global_roles <@ ARRAY['super_admin', 'platform_operator', 'support_agent']::text[]),
    CONSTRAINT users_password_hash_len             CHECK (char_length(password_hash) <= 10000),
    CONSTRAINT users_login_attempts_range          CHECK (login_attempts >= 0),
    CONSTRAINT users_email_key                     UNIQUE (email),
    -- plain (NULLS DISTINCT) so any number of local users may have no external id, and usable as
    -- the ON CONFLICT target of the just-in-time upsert
    CONSTRAINT users_external_auth_provider_external_user_id_key UNIQUE (external_auth_provider, external_user_id)
);
CREATE INDEX users_global_roles_idx ON users USING gin (global_roles);

-- ---------------------------------------------------------------------------------------------
-- user_tenant_memberships — backs users.tenantMemberships (spec §4.2)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE user_tenant_memberships (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id  uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    store_id   uuid,       -- NULL = whole tenant
    roles      text[]      NOT NULL,
    status     text        NOT NULL DEFAULT 'active',
    joined_at  timestamptz,
    source     text        NOT NULL DEFAULT 'local',
    position   integer     NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_tenant_memberships_store_id_fkey FOREIGN KEY (tenant_id, store_id)
        REFERENCES stores (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT user_tenant_memberships_roles_nonempty CHECK (cardinality(roles) >= 1),
    CONSTRAINT user_tenant_memberships_roles_check CHECK (roles <@ ARRAY[
        'tenant_admin', 'store_manager', 'content_editor', 'vendor_owner', 'vendor_staff',
        'b2b_company_admin', 'b2b_buyer', 'b2b_approver', 'city_partner_admin', 'viewer']::text[]),
    CONSTRAINT user_tenant_memberships_status_check   CHECK (status IN ('active', 'suspended', 'pending')),
    -- (design) 'token' rows mirror Keycloak claims at login and are read-only
    CONSTRAINT user_tenant_memberships_source_check   CHECK (source IN ('local', 'token')),
    CONSTRAINT user_tenant_memberships_position_range CHECK (position >= 0),
    CONSTRAINT user_tenant_memberships_user_id_tenant_id_store_id_key
        UNIQUE NULLS NOT DISTINCT (user_id, tenant_id, store_id)
);
-- (tenant_id, user_id) serves the users/tenants RLS EXISTS lookups and the tenant FK
CREATE INDEX user_tenant_memberships_tenant_id_user_id_idx ON user_tenant_memberships (tenant_id, user_id);
CREATE INDEX user_tenant_memberships_user_id_idx           ON user_tenant_memberships (user_id);
CREATE INDEX user_tenant_memberships_store_id_idx          ON user_tenant_memberships (store_id);

-- ---------------------------------------------------------------------------------------------
-- user_sessions (design) — local-login sessions; the payload-token JWT carries the id as `sid`.
-- Has updated_at like every table (the spec's column list omits it) so revocation is stamped.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE user_sessions (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    ip         inet,
    user_agent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_sessions_user_agent_len CHECK (char_length(user_agent) <= 1000)
);
CREATE INDEX user_sessions_user_id_idx ON user_sessions (user_id);

CREATE TRIGGER users_set_updated_at                   BEFORE UPDATE ON users                   FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();
CREATE TRIGGER user_tenant_memberships_set_updated_at BEFORE UPDATE ON user_tenant_memberships FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();
CREATE TRIGGER user_sessions_set_updated_at           BEFORE UPDATE ON user_sessions           FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();

GRANT SELECT, INSERT, UPDATE, DELETE ON users, user_tenant_memberships, user_sessions TO cityos_app;
