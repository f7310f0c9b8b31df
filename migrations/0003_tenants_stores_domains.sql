-- 0003 · tenancy: tenants, stores, their domains (child table) and portals, plus host resolution.
--
-- RLS shape (policies come in a later migration): tenants are keyed by id; stores, domains and
-- portals carry tenant_id. Every (tenant_id, store_id) pair references stores (tenant_id, id), so a
-- row can never point at another tenant's store.
-- The media FKs of stores (logo, favicon, seo.ogImage) are added in 0006, once media exists.

-- ---------------------------------------------------------------------------------------------
-- tenants
-- ---------------------------------------------------------------------------------------------
CREATE TABLE tenants (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    handle            text        NOT NULL,
    name              text        NOT NULL,
    status            text        NOT NULL DEFAULT 'trial',
    subscription_tier text        NOT NULL DEFAULT 'basic',
    billing_email     text,       -- optional here (the original required it), see spec §3.5
    country_id        uuid        NOT NULL REFERENCES countries (id) ON DELETE RESTRICT,
    -- That scope/category/subcategory belong to country/scope/category is checked by the engine's
    -- hooks: a category may have no scope, which a composite FK cannot express.
    scope_id          uuid        REFERENCES scopes (id) ON DELETE RESTRICT,
    category_id       uuid        REFERENCES categories (id) ON DELETE RESTRICT,
    subcategory_id    uuid        REFERENCES subcategories (id) ON DELETE RESTRICT,
    medusa_tenant_id  text,
    keycloak_realm_id text,
    trial_ends_at     timestamptz,
    metadata          jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- (design) one DNS label; the original allowed any [a-z0-9-]+
    CONSTRAINT tenants_handle_format            CHECK (handle ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
    CONSTRAINT tenants_handle_len               CHECK (char_length(handle) <= 63),
    CONSTRAINT tenants_name_len                 CHECK (char_length(name) <= 200),
    CONSTRAINT tenants_status_check             CHECK (status IN ('active', 'trial', 'suspended', 'inactive')),
    CONSTRAINT tenants_subscription_tier_check  CHECK (subscription_tier IN ('basic', 'pro', 'enterprise', 'custom')),
    CONSTRAINT tenants_billing_email_len        CHECK (char_length(billing_email) <= 10000),
    CONSTRAINT tenants_billing_email_lower      CHECK (billing_email = lower(billing_email)),
    CONSTRAINT tenants_medusa_tenant_id_len     CHECK (char_length(medusa_tenant_id) <= 10000),
    CONSTRAINT tenants_keycloak_realm_id_len    CHECK (char_length(keycloak_realm_id) <= 10000),
    CONSTRAINT tenants_handle_key               UNIQUE (handle)
);
CREATE INDEX tenants_status_idx         ON tenants (status);
CREATE INDEX tenants_country_id_idx     ON tenants (country_id);
CREATE INDEX tenants_scope_id_idx       ON tenants (scope_id);
CREATE INDEX tenants_category_id_idx    ON tenants (category_id);
CREATE INDEX tenants_subcategory_id_idx ON tenants (subcategory_id);
-- (design) a Medusa tenant maps to at most one tenant here
CREATE UNIQUE INDEX tenants_medusa_tenant_id_key ON tenants (medusa_tenant_id) WHERE medusa_tenant_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- stores
-- ---------------------------------------------------------------------------------------------
CREATE TABLE stores (
    id                      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id               uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    handle                  text        NOT NULL,
    name                    text        NOT NULL,
    status                  text        NOT NULL DEFAULT 'active',
    storefront_type         text        NOT NULL DEFAULT 'retail',
    storefront_url          text,       -- "absolute https:// URL" is validated by the engine
    theme_config            jsonb,
    logo_id                 uuid,       -- FK → media added in 0006
    favicon_id              uuid,       -- FK → media added in 0006
    seo_title               text,
    seo_description         text,
    seo_og_image_id         uuid,       -- FK → media added in 0006
    location                geography(Point, 4326),
    medusa_vendor_id        text,
    medusa_store_id         text,
    medusa_sales_channel_id text,
    medusa_region_ids       text[]      NOT NULL DEFAULT '{}',
    cms_site_id             text,
    metadata                jsonb,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stores_handle_format                CHECK (handle ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
    CONSTRAINT stores_handle_len                   CHECK (char_length(handle) <= 63),
    CONSTRAINT stores_name_len                     CHECK (char_length(name) <= 200),
    CONSTRAINT stores_status_check                 CHECK (status IN ('active', 'inactive', 'maintenance')),
    CONSTRAINT stores_storefront_type_check        CHECK (storefront_type IN ('retail', 'services', 'digital', 'marketplace', 'b2b', 'subscription', 'hybrid')),
    CONSTRAINT stores_storefront_url_len           CHECK (char_length(storefront_url) <= 10000),
    CONSTRAINT stores_seo_title_len                CHECK (char_length(seo_title) <= 200),
    CONSTRAINT stores_seo_description_len          CHECK (char_length(seo_description) <= 10000),
    CONSTRAINT stores_medusa_vendor_id_len         CHECK (char_length(medusa_vendor_id) <= 10000),
    CONSTRAINT stores_medusa_store_id_len          CHECK (char_length(medusa_store_id) <= 10000),
    CONSTRAINT stores_medusa_sales_channel_id_len  CHECK (char_length(medusa_sales_channel_id) <= 10000),
    CONSTRAINT stores_cms_site_id_len              CHECK (char_length(cms_site_id) <= 10000),
    -- target of every composite (tenant_id, store_id) FK; also the index of the tenant_id FK
    CONSTRAINT stores_tenant_id_id_key             UNIQUE (tenant_id, id),
    -- (design) the original only described handle uniqueness
    CONSTRAINT stores_tenant_id_handle_key         UNIQUE (tenant_id, handle)
);
CREATE INDEX stores_tenant_id_created_at_idx    ON stores (tenant_id, created_at DESC);
CREATE INDEX stores_tenant_id_status_idx        ON stores (tenant_id, status);
CREATE INDEX stores_location_idx                ON stores USING gist (location);
CREATE INDEX stores_medusa_vendor_id_idx        ON stores (medusa_vendor_id);
CREATE INDEX stores_medusa_store_id_idx         ON stores (medusa_store_id);
CREATE INDEX stores_medusa_sales_channel_id_idx ON stores (medusa_sales_channel_id);

-- ---------------------------------------------------------------------------------------------
-- domains — backs tenants/stores .subdomains and .customDomains (spec §4.1)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE domains (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    store_id   uuid,       -- NULL = the tenant's own domain
    kind       text        NOT NULL,
    hostname   text        NOT NULL,
    verified   boolean     NOT NULL DEFAULT false,
    is_primary boolean     NOT NULL DEFAULT false,
    position   integer     NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT domains_store_id_fkey FOREIGN KEY (tenant_id, store_id)
        REFERENCES stores (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT domains_kind_check      CHECK (kind IN ('subdomain', 'custom')),
    CONSTRAINT domains_hostname_len    CHECK (char_length(hostname) <= 253),
    -- lower-case dot-separated DNS labels; IDNs arrive as punycode (xn--…), so this covers them
    CONSTRAINT domains_hostname_format CHECK (hostname ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$'),
    -- a tenant's subdomain is one label (fashionista); a store's may have several (shop.fashionista)
    CONSTRAINT domains_subdomain_label CHECK (kind <> 'subdomain' OR store_id IS NOT NULL OR strpos(hostname, '.') = 0),
    CONSTRAINT domains_position_range  CHECK (position >= 0),
    -- one host maps to one place, across all tenants
    CONSTRAINT domains_kind_hostname_key UNIQUE (kind, hostname)
);
-- at most one primary subdomain and one primary custom domain per tenant, and per store
CREATE UNIQUE INDEX domains_tenant_id_store_id_kind_key ON domains (tenant_id, store_id, kind) NULLS NOT DISTINCT WHERE is_primary;
-- loads the array rows of a tenant or store in order; serves both FKs
CREATE INDEX domains_tenant_id_store_id_kind_position_idx ON domains (tenant_id, store_id, kind, position);
CREATE INDEX domains_store_id_idx ON domains (store_id);
-- cityos_resolve_host looks a host up without knowing its kind
CREATE INDEX domains_hostname_idx ON domains (hostname);

-- ---------------------------------------------------------------------------------------------
-- portals (placed here: Tenant → Store → Portal in the hierarchy)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE portals (
    id                      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name                    text        NOT NULL,
    tenant_id               uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    store_id                uuid,       -- NULL = tenant-wide portal
    portal_type             text        NOT NULL,
    base_path               text        NOT NULL DEFAULT '/',
    allowed_roles           text[]      NOT NULL,
    config_enabled_features text[]      NOT NULL DEFAULT '{}',
    config_theme            jsonb,
    config_customization    jsonb,
    metadata                jsonb,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT portals_store_id_fkey FOREIGN KEY (tenant_id, store_id)
        REFERENCES stores (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT portals_name_len           CHECK (char_length(name) <= 200),
    CONSTRAINT portals_portal_type_check  CHECK (portal_type IN ('public', 'tenant_admin', 'vendor', 'b2b', 'city_partner', 'operator')),
    CONSTRAINT portals_base_path_len      CHECK (char_length(base_path) <= 10000),
    -- starts with '/', no trailing '/' except the root, no '..'; empty segments ('//') are refused too
    CONSTRAINT portals_base_path_format   CHECK (base_path ~ '^/(?:[^/]+(?:/[^/]+)*)?$' AND strpos(base_path, '..') = 0),
    CONSTRAINT portals_allowed_roles_nonempty CHECK (cardinality(allowed_roles) >= 1),
    -- portal audience (spec §2): public + all roles except platform_operator, support_agent, content_editor, viewer
    CONSTRAINT portals_allowed_roles_check CHECK (allowed_roles <@ ARRAY[
        'public', 'super_admin', 'tenant_admin', 'store_manager', 'vendor_owner', 'vendor_staff',
        'b2b_company_admin', 'b2b_buyer', 'b2b_approver', 'city_partner_admin']::text[]),
    -- (design)
    CONSTRAINT portals_tenant_id_store_id_base_path_key UNIQUE NULLS NOT DISTINCT (tenant_id, store_id, base_path)
);
CREATE INDEX portals_tenant_id_created_at_idx  ON portals (tenant_id, created_at DESC);
CREATE INDEX portals_tenant_id_portal_type_idx ON portals (tenant_id, portal_type);
CREATE INDEX portals_store_id_idx              ON portals (store_id);

-- ---------------------------------------------------------------------------------------------
-- Host resolution: the only cross-tenant read path.
-- SECURITY DEFINER so it sees every tenant's domains once RLS is on. The function-level
-- SET cityos.all_tenants keeps it working under FORCE ROW LEVEL SECURITY even when the owner is
-- not a superuser. `host` is either a full custom host or the subdomain part left after the engine
-- stripped one of CITYOS_BASE_DOMAINS; the caller picks the row by `kind` (one host can match once
-- per kind). Unverified custom domains are returned too: whether to serve them is the engine's call.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION cityos_resolve_host(host text)
    RETURNS TABLE (tenant_id uuid, store_id uuid, kind text, tenant_status text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    SET cityos.all_tenants = 'on'
AS $$
    SELECT d.tenant_id, d.store_id, d.kind, t.status
      FROM public.domains d
      JOIN public.tenants t ON t.id = d.tenant_id
     WHERE d.hostname = lower(rtrim(host, '.'))
$$;
REVOKE ALL ON FUNCTION cityos_resolve_host(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cityos_resolve_host(text) TO cityos_app;

-- ---------------------------------------------------------------------------------------------
-- Triggers
-- ---------------------------------------------------------------------------------------------
CREATE TRIGGER tenants_set_updated_at BEFORE UPDATE ON tenants FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();
CREATE TRIGGER stores_set_updated_at  BEFORE UPDATE ON stores  FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();
CREATE TRIGGER domains_set_updated_at BEFORE UPDATE ON domains FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();
CREATE TRIGGER portals_set_updated_at BEFORE UPDATE ON portals FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();

-- every instance drops its host/context cache when the host map or a tenant's status may have changed
CREATE TRIGGER tenants_notify_context AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION cityos_notify_context();
CREATE TRIGGER stores_notify_context  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON stores
    FOR EACH STATEMENT EXECUTE FUNCTION cityos_notify_context();
CREATE TRIGGER domains_notify_context AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON domains
    FOR EACH STATEMENT EXECUTE FUNCTION cityos_notify_context();

GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, stores, domains, portals TO cityos_app;
