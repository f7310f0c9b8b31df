-- 0015 · the server announces its own writes to the public read cache after they commit.
--
-- PostgreSQL serialises the commits of transactions that NOTIFY (one lock, held through the
-- commit's disk flush), so the per-statement NOTIFY of 0012 made every content write wait for
-- the previous one's flush. Transactions opened by the server's write path set
-- cityos.public_announced = on; their changes are announced after the commit, coalesced, with
-- synchronous_commit off (src/collections/public_cache.rs). Every other writer (psql, jobs,
-- migrations, seeds) still notifies from the trigger.
CREATE OR REPLACE FUNCTION cityos_notify_public() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF coalesce(current_setting('cityos.public_announced', true), '') <> 'on' THEN
        PERFORM pg_notify('cityos_public', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END
$$;
