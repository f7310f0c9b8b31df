-- Benchmark data: 50 tenants (bench-01 … bench-50, each with the subdomain bench-NN) under
-- Saudi Arabia → Riyadh → Retail → Fashion, and 400 pages per tenant (20,000 pages): titles built
-- from word lists, unique slugs, 2–3 layout blocks each, every other page published with
-- published_at spread over 2025. Set-based, so it takes a few seconds.
--
-- Idempotent: does nothing when bench-01 exists. Self-contained: creates the hierarchy it hangs
-- under when seed_demo.sql has not run (same fixed ids, matched by natural key).
-- Plain SQL, one DO block; when run as cityos_app it needs a transaction (see seed_demo.sql).
SELECT set_config('cityos.all_tenants', 'on', true);

DO $$
DECLARE
    v_country     uuid;
    v_scope       uuid;
    v_category    uuid;
    v_subcategory uuid;
BEGIN
    IF EXISTS (SELECT 1 FROM tenants WHERE handle = 'bench-01') THEN
        RAISE NOTICE 'seed_bench: bench-01 exists, nothing to do';
        RETURN;
    END IF;

    -- hierarchy (no-ops when seed_demo.sql ran)
    INSERT INTO countries (id, code, name, name_ar)
    VALUES ('10000000-0000-4000-8000-000000000001', 'SA', 'Saudi Arabia', 'المملكة العربية السعودية')
    ON CONFLICT DO NOTHING;
    SELECT id INTO STRICT v_country FROM countries WHERE code = 'SA';

    INSERT INTO scopes (id, scope_type, name, name_ar, country_id)
    VALUES ('20000000-0000-4000-8000-000000000001', 'city', 'Riyadh', 'الرياض', v_country)
    ON CONFLICT DO NOTHING;
    SELECT id INTO STRICT v_scope FROM scopes
     WHERE country_id = v_country AND scope_type = 'city' AND lower(name) = 'riyadh';

    INSERT INTO categories (id, name, name_ar, scope_id)
    VALUES ('30000000-0000-4000-8000-000000000001', 'Retail', 'تجزئة', v_scope)
    ON CONFLICT DO NOTHING;
    SELECT id INTO STRICT v_category FROM categories WHERE scope_id = v_scope AND lower(name) = 'retail';

    INSERT INTO subcategories (id, name, name_ar, category_id)
    VALUES ('40000000-0000-4000-8000-000000000001', 'Fashion', 'أزياء', v_category)
    ON CONFLICT DO NOTHING;
    SELECT id INTO STRICT v_subcategory FROM subcategories WHERE category_id = v_category AND lower(name) = 'fashion';

    -- tenants and their subdomains
    INSERT INTO tenants (handle, name, status, subscription_tier, country_id, scope_id, category_id, subcategory_id, metadata)
    SELECT 'bench-' || to_char(i, 'FM00'), 'Bench Tenant ' || to_char(i, 'FM00'), 'active',
           (ARRAY['basic', 'pro', 'enterprise'])[1 + i % 3],
           v_country, v_scope, v_category, v_subcategory, '{"bench": true}'
      FROM generate_series(1, 50) AS i;

    INSERT INTO domains (tenant_id, kind, hostname, is_primary, position)
    SELECT t.id, 'subdomain', t.handle, true, 0
      FROM tenants t
     WHERE t.handle LIKE 'bench-__';

    -- 400 pages per tenant. Word lists are indexed by arithmetic on (tenant, n) so titles vary
    -- without random(): the data set is the same on every run.
    WITH words AS (
        SELECT ARRAY['Essential', 'Ultimate', 'Complete', 'Practical', 'Modern', 'Timeless', 'Seasonal', 'Quick',
                     'Expert', 'Everyday', 'Smart', 'Classic', 'Hidden', 'Local', 'Weekend', 'Family'] AS adj,
               ARRAY['Guide', 'Checklist', 'Tips', 'Stories', 'Secrets', 'Ideas', 'Trends', 'Basics',
                     'Handbook', 'Notes'] AS noun,
               ARRAY['Abayas', 'Riyadh Dining', 'Saudi Coffee', 'Desert Camping', 'Oud Perfumes', 'Home Decor',
                     'Date Farms', 'Ramadan Gifts', 'Summer Travel', 'Small Business', 'Handmade Jewelry',
                     'Street Food', 'Modest Fashion', 'Arabic Calligraphy', 'Souq Shopping', 'Fitness Routines',
                     'Kids Activities', 'Healthy Recipes', 'Car Care', 'Rooftop Gardens'] AS subject
    ),
    src AS (
        SELECT t.id AS tenant_id,
               substr(t.handle, 7)::int AS tn,
               n,
               w.adj[1 + n % 16] AS adj,
               w.noun[1 + (n / 16) % 10] AS noun,
               w.subject[1 + (n * 7 + substr(t.handle, 7)::int) % 20] AS subject,
               timestamptz '2025-01-01T00:00:00Z'
                   + make_interval(mins => ((substr(t.handle, 7)::int * 400 + n) * 7919) % 525600) AS created_at
          FROM tenants t
         CROSS JOIN generate_series(1, 400) AS n
         CROSS JOIN words w
         WHERE t.handle LIKE 'bench-__'
    ),
    titled AS (
        SELECT s.*,
               'The ' || adj || ' ' || subject || ' ' || noun AS title,
               lower(replace(adj || ' ' || subject || ' ' || noun, ' ', '-')) || '-' || n AS slug,
               md5(tenant_id::text || ':' || n) AS h   -- block ids: 24 hex from one hash per page
          FROM src s
    )
    INSERT INTO pages (tenant_id, title, slug, layout, seo_title, seo_description, status, published_at, created_at, updated_at)
    SELECT tenant_id, title, slug,
           jsonb_build_array(
               jsonb_build_object('id', substr(h, 1, 24), 'blockType', 'hero', 'blockName', NULL,
                                  'title', title, 'subtitle', 'Everything about ' || lower(subject) || ' in one place.',
                                  'image', NULL, 'cta', 'Read more', 'ctaLink', '/' || slug),
               jsonb_build_object('id', substr(h, 9, 24), 'blockType', 'richText', 'blockName', NULL,
                                  'content', jsonb_build_object('root', jsonb_build_object(
                                      'type', 'root', 'format', '', 'indent', 0, 'version', 1, 'direction', 'ltr',
                                      'children', jsonb_build_array(jsonb_build_object(
                                          'type', 'paragraph', 'format', '', 'indent', 0, 'version', 1, 'direction', 'ltr',
                                          'textFormat', 0,
                                          'children', jsonb_build_array(jsonb_build_object(
                                              'type', 'text', 'format', 0, 'style', '', 'mode', 'normal', 'detail', 0,
                                              'version', 1,
                                              'text', adj || ' ' || lower(noun) || ' on ' || lower(subject)
                                                      || ' from Bench Tenant ' || to_char(tn, 'FM00') || ', part ' || n || '.'))))))))
           || CASE WHEN n % 3 = 0 THEN jsonb_build_array(
                  jsonb_build_object('id', substr(h, 5, 24), 'blockType', 'cta', 'blockName', NULL,
                                     'heading', 'Stay in touch', 'text', NULL, 'label', 'Subscribe',
                                     'link', '/newsletter', 'style', CASE WHEN n % 2 = 0 THEN 'primary' ELSE 'secondary' END))
              ELSE '[]'::jsonb END,
           title,
           adj || ' ' || lower(noun) || ' on ' || lower(subject) || '.',
           CASE WHEN n % 2 = 0 THEN 'published' ELSE 'draft' END,
           CASE WHEN n % 2 = 0 THEN created_at + make_interval(hours => n % 72) END,
           created_at, created_at
      FROM titled;
END
$$;
