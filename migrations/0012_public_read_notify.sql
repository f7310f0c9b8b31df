-- 0012 · NOTIFY cityos_public when anything an anonymous reader can see changes.
--
-- Each instance may keep anonymous (storefront) read responses for a moment (PUBLIC_CACHE_TTL_MS);
-- every committed change to a table those responses are built from empties that cache on every
-- instance. One notification per statement; PostgreSQL folds duplicates within a transaction.
-- A new table whose rows anonymous callers can read needs this trigger too (tests/public_cache.rs
-- checks the tables of every collection anonymous callers may read).
CREATE OR REPLACE FUNCTION cityos_notify_public() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('cityos_public', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['countries', 'scopes', 'categories', 'subcategories', 'tenants', 'stores',
                             'domains', 'portals', 'media', 'pages', 'posts', 'product_content']
    LOOP
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I
                 FOR EACH STATEMENT EXECUTE FUNCTION cityos_notify_public()',
            t || '_notify_public', t);
    END LOOP;
END
$$;
