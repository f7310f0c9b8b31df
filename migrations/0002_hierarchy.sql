-- 0002 · geo & category hierarchy: countries → scopes → categories → subcategories.
-- Global tables (no tenant_id, no RLS): public read, writes super_admin (enforced by the engine).
-- References between levels are RESTRICT: a node still in use cannot be deleted.

CREATE TABLE countries (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    code       char(2)     NOT NULL,
    name       text        NOT NULL,
    name_ar    text,
    status     text        NOT NULL DEFAULT 'active',
    metadata   jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT countries_code_format  CHECK (code ~ '^[A-Z]{2}$'),   -- ISO 3166-1 alpha-2, upper-case
    CONSTRAINT countries_name_len     CHECK (char_length(name) <= 200),
    CONSTRAINT countries_name_ar_len  CHECK (char_length(name_ar) <= 200),
    CONSTRAINT countries_status_check CHECK (status IN ('active', 'inactive')),
    CONSTRAINT countries_code_key     UNIQUE (code)
);

CREATE TABLE scopes (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    scope_type text        NOT NULL,
    name       text        NOT NULL,
    name_ar    text,
    country_id uuid        NOT NULL REFERENCES countries (id) ON DELETE RESTRICT,
    status     text        NOT NULL DEFAULT 'active',
    metadata   jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT scopes_scope_type_check CHECK (scope_type IN ('theme', 'city')),
    CONSTRAINT scopes_name_len         CHECK (char_length(name) <= 200),
    CONSTRAINT scopes_name_ar_len      CHECK (char_length(name_ar) <= 200),
    CONSTRAINT scopes_status_check     CHECK (status IN ('active', 'inactive'))
);
CREATE INDEX scopes_country_id_scope_type_idx ON scopes (country_id, scope_type);
-- (design) names are unique per country and type, case-insensitively
CREATE UNIQUE INDEX scopes_country_id_scope_type_name_key ON scopes (country_id, scope_type, lower(name));

CREATE TABLE categories (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text        NOT NULL,
    name_ar    text,
    scope_id   uuid        REFERENCES scopes (id) ON DELETE RESTRICT,
    status     text        NOT NULL DEFAULT 'active',
    metadata   jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT categories_name_len     CHECK (char_length(name) <= 200),
    CONSTRAINT categories_name_ar_len  CHECK (char_length(name_ar) <= 200),
    CONSTRAINT categories_status_check CHECK (status IN ('active', 'inactive'))
);
CREATE INDEX categories_scope_id_idx ON categories (scope_id);
-- (design) NULLS NOT DISTINCT: scope-less categories share one namespace
CREATE UNIQUE INDEX categories_scope_id_name_key ON categories (scope_id, lower(name)) NULLS NOT DISTINCT;

CREATE TABLE subcategories (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text        NOT NULL,
    name_ar     text,
    category_id uuid        NOT NULL REFERENCES categories (id) ON DELETE RESTRICT,
    status      text        NOT NULL DEFAULT 'active',
    metadata    jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subcategories_name_len     CHECK (char_length(name) <= 200),
    CONSTRAINT subcategories_name_ar_len  CHECK (char_length(name_ar) <= 200),
    CONSTRAINT subcategories_status_check CHECK (status IN ('active', 'inactive'))
);
-- (design); also serves as the index of the category_id FK
CREATE UNIQUE INDEX subcategories_category_id_name_key ON subcategories (category_id, lower(name));

CREATE TRIGGER countries_set_updated_at     BEFORE UPDATE ON countries     FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();
CREATE TRIGGER scopes_set_updated_at        BEFORE UPDATE ON scopes        FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();
CREATE TRIGGER categories_set_updated_at    BEFORE UPDATE ON categories    FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();
CREATE TRIGGER subcategories_set_updated_at BEFORE UPDATE ON subcategories FOR EACH ROW EXECUTE FUNCTION cityos_set_updated_at();

GRANT SELECT, INSERT, UPDATE, DELETE ON countries, scopes, categories, subcategories TO cityos_app;
