-- 0018 · The public-read triggers skip the function call for writers that announce after commit.
--
-- Since 0015 the API's writes set cityos.public_announced = on and the trigger function only
-- returned. Calling a PL/pgSQL function per statement still cost every API write a few percent
-- of its PostgreSQL time; a WHEN condition on the trigger is evaluated by the executor without
-- the call. Other writers (psql, jobs, migrations, seeds) still notify from the trigger. The
-- tables are the ones 0012 gave the trigger.
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT tgrelid::regclass FROM pg_trigger WHERE tgname = tgrelid::regclass::text || '_notify_public'
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t::text || '_notify_public', t);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH STATEMENT
                 WHEN (coalesce(current_setting(''cityos.public_announced'', true), '''') <> ''on'')
                 EXECUTE FUNCTION cityos_notify_public()',
            t::text || '_notify_public', t);
        -- TRUNCATE triggers take no WHEN; nobody truncates through the API.
        EXECUTE format(
            'CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION cityos_notify_public()',
            t::text || '_notify_public_truncate', t);
    END LOOP;
END
$$;
