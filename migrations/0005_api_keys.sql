-- 0005 · api-keys. Tenant-scoped; tenant_id NULL = platform key (RLS: visible only with
-- cityos_all_tenants()). The plaintext `dck_<12 hex>_<64 hex>` is never stored: `prefix` is its
-- public first part (lookup), `key_hash` the hex HMAC-SHA256 of the whole plaintext.

CREATE TABLE api_keys (
    id                          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name                        text        NOT NULL,
    prefix                      text        NOT NULL,
    key_hash                    char(64)    NOT NULL,     -- H
    owner_type                  text        NOT NULL DEFAULT 'user',
    owner_ref                   text        NOT NULL,     -- the user id when owner_type = 'user'
    scopes                      text[]      NOT NULL,
    tenant_id                   uuid        REFERENCES tenants (id) ON DELETE CASCADE,
    store_id                    uuid,
    status                      text        NOT NULL DEFAULT 'active',
    revoked_at                  timestamptz,
    expires_at                  timestamptz,
    last_used_at                timestamptz,
    usage_count                 bigint      NOT NULL DEFAULT 0,
    rate_limit_requests_per_hour integer,
    rate_limit_requests_per_day  integer,
    created_by_id               uuid        REFERENCES users (id) ON DELETE SET NULL,
    metadata                    jsonb,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_keys_store_id_fkey FOREIGN KEY (tenant_id, store_id)
        REFERENCES stores (tenant_id, id) ON DELETE CASCADE,
    -- the composite FK is not checked while tenant_id is NULL, so a NULL-tenant row has no store
    CONSTRAINT api_keys_store_id_requires_tenant CHECK (tenant_id IS NOT NULL OR store_id IS NULL),
    CONSTRAINT api_keys_name_len          CHECK (char_length(name) <= 200),
    CONSTRAINT api_keys_prefix_len        CHECK (char_length(prefix) <= 16),
    CONSTRAINT api_keys_prefix_format     CHECK (prefix ~ '^dck_[0-9a-f]{12}$'),
    CONSTRAINT api_keys_key_hash_format   CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT api_keys_owner_type_check  CHECK (owner_type IN ('user', 'service', 'integration')),
    CONSTRAINT api_keys_owner_ref_len     CHECK (char_length(owner_ref) <= 10000),
    CONSTRAINT api_keys_scopes_nonempty   CHECK (cardinality(scopes) >= 1),
    -- values follow a grammar rather than an enumeration; that <slug> is a real collection is
    -- the engine's check (adding a collection then needs no migration here)
    CONSTRAINT api_keys_scopes_check      CHECK (cityos_text_array_all_match(scopes,
        '^(?:(?:read|write|delete):(?:[a-z][a-z0-9-]*|\*)|integrations:(?:medusa|fleetbase|erpnext|notifications|custom))$')),
    CONSTRAINT api_keys_status_check      CHECK (status IN ('active', 'revoked', 'expired')),
    CONSTRAINT api_keys_usage_count_range CHECK (usage_count >= 0),
    CONSTRAINT api_keys_rate_limit_requests_per_hour_range CHECK (rate_limit_requests_per_hour >= 0),
    CONSTRAINT api_keys_rate_limit_requests_per_day_range  CHECK (rate_limit_requests_per_day >= 0),
    CONSTRAINT api_keys_prefix_key        UNIQUE (prefix)
);
CREATE INDEX api_keys_tenant_id_created_at_idx ON api_keys (tenant_id, created_at DESC);
CREATE INDEX api_keys_tenant_id_status_idx     ON api_keys (tenant_id, status);
CREATE INDEX api_keys_owner_type_owner_ref_idx ON api_keys (owner_type, owner_ref);
CREATE INDEX api_keys_store_id_idx             ON api_keys (store_id);
CREATE INDEX api_keys_created_by_id_idx        ON api_keys (created_by_id);

CREATE TRIGGER api_keys_set_updated_at BEFORE UPDATE ON api_keys FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();

GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys TO cityos_app;
