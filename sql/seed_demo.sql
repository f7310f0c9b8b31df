-- Demo data: the seed guide's hierarchy (Saudi Arabia → Riyadh → Retail → Fashion → fashionista-sa
-- → store main) plus a second tenant, riyadh-eats, for isolation demos, with portals and content.
--
-- Idempotent: every row has a fixed id and is inserted with ON CONFLICT DO NOTHING; parents are
-- looked up by natural key (country code, tenant handle, store handle), so running it twice, or
-- after the same objects were created through the API, adds nothing twice.
-- Plain SQL (no psql meta-commands), so it can be sent as one multi-statement string.
-- Users are not created here: the application inserts the admin user with an argon2 hash.
--
-- When run as cityos_app inside one transaction, this lets the inserts pass row-level security
-- (it is transaction-local, and a no-op for the owner role).
SELECT set_config('cityos.all_tenants', 'on', true);

-- ---------------------------------------------------------------------------------------------
-- Hierarchy
-- ---------------------------------------------------------------------------------------------
INSERT INTO countries (id, code, name, name_ar, status, metadata)
VALUES ('10000000-0000-4000-8000-000000000001', 'SA', 'Saudi Arabia', 'المملكة العربية السعودية', 'active',
        '{"currency": "SAR", "timezone": "Asia/Riyadh", "phoneCode": "+966"}')
ON CONFLICT DO NOTHING;

INSERT INTO scopes (id, scope_type, name, name_ar, country_id, status)
SELECT '20000000-0000-4000-8000-000000000001'::uuid, 'city', 'Riyadh', 'الرياض', c.id, 'active'
  FROM countries c WHERE c.code = 'SA'
ON CONFLICT DO NOTHING;

INSERT INTO categories (id, name, name_ar, scope_id, status)
SELECT v.id::uuid, v.name, v.name_ar, s.id, 'active'
  FROM (VALUES ('30000000-0000-4000-8000-000000000001', 'Retail',          'تجزئة'),
               ('30000000-0000-4000-8000-000000000002', 'Food & Beverage', 'أغذية ومشروبات')) AS v (id, name, name_ar)
  JOIN countries c ON c.code = 'SA'
  JOIN scopes s ON s.country_id = c.id AND s.scope_type = 'city' AND lower(s.name) = 'riyadh'
ON CONFLICT DO NOTHING;

INSERT INTO subcategories (id, name, name_ar, category_id, status)
SELECT v.id::uuid, v.name, v.name_ar, cat.id, 'active'
  FROM (VALUES ('40000000-0000-4000-8000-000000000001', 'Fashion',     'أزياء',  'retail'),
               ('40000000-0000-4000-8000-000000000002', 'Restaurants', 'مطاعم', 'food & beverage')) AS v (id, name, name_ar, category)
  JOIN countries c ON c.code = 'SA'
  JOIN scopes s ON s.country_id = c.id AND s.scope_type = 'city' AND lower(s.name) = 'riyadh'
  JOIN categories cat ON cat.scope_id = s.id AND lower(cat.name) = v.category
ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Tenants
-- ---------------------------------------------------------------------------------------------
INSERT INTO tenants (id, handle, name, status, subscription_tier, billing_email,
                     country_id, scope_id, category_id, subcategory_id, metadata)
SELECT v.id::uuid, v.handle, v.name, 'active', v.tier, v.billing_email, c.id, s.id, cat.id, sub.id, v.metadata::jsonb
  FROM (VALUES ('50000000-0000-4000-8000-000000000001', 'fashionista-sa', 'Fashionista Saudi', 'pro',   'billing@fashionista.sa',
                'retail',          'fashion',     '{"demo": true}'),
               ('50000000-0000-4000-8000-000000000002', 'riyadh-eats',    'Riyadh Eats',    'basic', 'accounts@riyadheats.sa',
                'food & beverage', 'restaurants', '{"demo": true}'))
       AS v (id, handle, name, tier, billing_email, category, subcategory, metadata)
  JOIN countries c ON c.code = 'SA'
  JOIN scopes s ON s.country_id = c.id AND s.scope_type = 'city' AND lower(s.name) = 'riyadh'
  JOIN categories cat ON cat.scope_id = s.id AND lower(cat.name) = v.category
  JOIN subcategories sub ON sub.category_id = cat.id AND lower(sub.name) = v.subcategory
ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Stores (location is [lng, lat] on the wire)
-- ---------------------------------------------------------------------------------------------
INSERT INTO stores (id, tenant_id, handle, name, status, storefront_type, storefront_url,
                    seo_title, seo_description, location)
SELECT v.id::uuid, t.id, v.handle, v.name, 'active', v.storefront_type, v.url, v.seo_title, v.seo_description,
       ST_SetSRID(ST_MakePoint(v.lng, v.lat), 4326)::geography
  FROM (VALUES ('60000000-0000-4000-8000-000000000001', 'fashionista-sa', 'main', 'Fashionista Main Store', 'retail',
                'https://shop.fashionista.sa', 'Fashionista — Riyadh', 'Modest fashion, abayas and accessories in Riyadh.',
                46.6753::float8, 24.7136::float8),
               ('60000000-0000-4000-8000-000000000002', 'riyadh-eats', 'downtown', 'Riyadh Eats Downtown', 'services',
                'https://riyadheats.sa/downtown', 'Riyadh Eats Downtown', 'Traditional Saudi dishes in the heart of Riyadh.',
                46.7160::float8, 24.6310::float8))
       AS v (id, tenant, handle, name, storefront_type, url, seo_title, seo_description, lng, lat)
  JOIN tenants t ON t.handle = v.tenant
ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Domains (tenants/stores .subdomains and .customDomains)
-- ---------------------------------------------------------------------------------------------
INSERT INTO domains (id, tenant_id, store_id, kind, hostname, verified, is_primary, position)
SELECT v.id::uuid, t.id, s.id, v.kind, v.hostname, v.verified, true, 0
  FROM (VALUES ('70000000-0000-4000-8000-000000000001', 'fashionista-sa', NULL,       'subdomain', 'fashionista',         false),
               ('70000000-0000-4000-8000-000000000002', 'fashionista-sa', NULL,       'custom',    'fashionista.sa',      true),
               ('70000000-0000-4000-8000-000000000003', 'fashionista-sa', 'main',     'subdomain', 'shop.fashionista',    false),
               ('70000000-0000-4000-8000-000000000004', 'fashionista-sa', 'main',     'custom',    'shop.fashionista.sa', true),
               ('70000000-0000-4000-8000-000000000005', 'riyadh-eats',    NULL,       'subdomain', 'riyadheats',          false),
               ('70000000-0000-4000-8000-000000000006', 'riyadh-eats',    NULL,       'custom',    'riyadheats.sa',       true),
               ('70000000-0000-4000-8000-000000000007', 'riyadh-eats',    'downtown', 'subdomain', 'downtown.riyadheats', false))
       AS v (id, tenant, store, kind, hostname, verified)
  JOIN tenants t ON t.handle = v.tenant
  LEFT JOIN stores s ON s.tenant_id = t.id AND s.handle = v.store
 WHERE v.store IS NULL OR s.id IS NOT NULL
ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Portals
-- ---------------------------------------------------------------------------------------------
INSERT INTO portals (id, name, tenant_id, store_id, portal_type, base_path, allowed_roles, config_enabled_features)
SELECT v.id::uuid, v.name, t.id, s.id, v.portal_type, v.base_path, v.allowed_roles::text[], v.features::text[]
  FROM (VALUES ('80000000-0000-4000-8000-000000000001', 'Fashionista Storefront', 'fashionista-sa', NULL,   'public',       '/',
                '{public}', '{catalog,search,blog}'),
               ('80000000-0000-4000-8000-000000000002', 'Fashionista Admin',      'fashionista-sa', NULL,   'tenant_admin', '/admin',
                '{tenant_admin,store_manager}', '{content,media,analytics}'),
               ('80000000-0000-4000-8000-000000000003', 'Fashionista Vendors',    'fashionista-sa', 'main', 'vendor',       '/vendor',
                '{vendor_owner,vendor_staff}', '{products,orders}'),
               ('80000000-0000-4000-8000-000000000004', 'Riyadh Eats Website',    'riyadh-eats',    NULL,   'public',       '/',
                '{public}', '{menu,ordering}'),
               ('80000000-0000-4000-8000-000000000005', 'Riyadh Eats Admin',      'riyadh-eats',    NULL,   'tenant_admin', '/admin',
                '{tenant_admin}', '{content,media}'))
       AS v (id, name, tenant, store, portal_type, base_path, allowed_roles, features)
  JOIN tenants t ON t.handle = v.tenant
  LEFT JOIN stores s ON s.tenant_id = t.id AND s.handle = v.store
 WHERE v.store IS NULL OR s.id IS NOT NULL
ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Pages: 3 published + 1 draft per tenant. layout rows follow the blocks shape
-- {id (24 hex), blockType, blockName, …fields}; richText is Lexical editor state.
-- ---------------------------------------------------------------------------------------------
INSERT INTO pages (id, tenant_id, store_id, title, slug, layout, seo_title, seo_description,
                   status, published_at, created_at, updated_at)
SELECT v.id::uuid, t.id, s.id, v.title, v.slug, v.layout::jsonb, v.title, v.seo_description,
       v.status, CASE WHEN v.status = 'published' THEN v.created_at::timestamptz + interval '1 hour' END,
       v.created_at::timestamptz, v.created_at::timestamptz
  FROM (VALUES
    ('90000000-0000-4000-8000-000000000001', 'fashionista-sa', NULL, 'Home', 'home', 'published', '2026-01-05T09:00:00Z',
     'Modest fashion for every day, made in Riyadh.',
     '[{"id":"65a1f0000000000000000001","blockType":"hero","blockName":null,"title":"Welcome to Fashionista","subtitle":"Modest fashion for every day, designed in Riyadh.","image":null,"cta":"Shop the collection","ctaLink":"/collections/new"},
       {"id":"65a1f0000000000000000002","blockType":"richText","blockName":"Intro","content":{"root":{"type":"root","format":"","indent":0,"version":1,"direction":"ltr","children":[{"type":"paragraph","format":"","indent":0,"version":1,"direction":"ltr","textFormat":0,"children":[{"type":"text","text":"Abayas, scarves and accessories, crafted with care and delivered across the Kingdom.","format":0,"style":"","mode":"normal","detail":0,"version":1}]}]}}},
       {"id":"65a1f0000000000000000003","blockType":"cta","blockName":null,"heading":"Join our newsletter","text":"New arrivals every week.","label":"Subscribe","link":"/newsletter","style":"primary"}]'),
    ('90000000-0000-4000-8000-000000000002', 'fashionista-sa', NULL, 'About Us', 'about', 'published', '2026-01-05T10:00:00Z',
     'The story behind Fashionista SA.',
     '[{"id":"65a1f0000000000000000011","blockType":"hero","blockName":null,"title":"Our Story","subtitle":"From a small atelier in Olaya to the whole Kingdom.","image":null,"cta":null,"ctaLink":null},
       {"id":"65a1f0000000000000000012","blockType":"richText","blockName":null,"content":{"root":{"type":"root","format":"","indent":0,"version":1,"direction":"ltr","children":[{"type":"paragraph","format":"","indent":0,"version":1,"direction":"ltr","textFormat":0,"children":[{"type":"text","text":"Fashionista SA was founded in 2019 by two designers who wanted elegant, comfortable modest wear.","format":0,"style":"","mode":"normal","detail":0,"version":1}]}]}}}]'),
    ('90000000-0000-4000-8000-000000000003', 'fashionista-sa', 'main', 'Visit Our Store', 'visit-us', 'published', '2026-01-06T09:00:00Z',
     'Opening hours and directions for the Fashionista main store.',
     '[{"id":"65a1f0000000000000000021","blockType":"richText","blockName":"Hours","content":{"root":{"type":"root","format":"","indent":0,"version":1,"direction":"ltr","children":[{"type":"paragraph","format":"","indent":0,"version":1,"direction":"ltr","textFormat":0,"children":[{"type":"text","text":"Open daily 10:00–23:00, Tahlia Street, Riyadh.","format":0,"style":"","mode":"normal","detail":0,"version":1}]}]}}},
       {"id":"65a1f0000000000000000022","blockType":"cta","blockName":null,"heading":null,"text":null,"label":"Get directions","link":"https://maps.example.com/fashionista","style":"secondary"}]'),
    ('90000000-0000-4000-8000-000000000004', 'fashionista-sa', NULL, 'Summer Collection 2026', 'summer-collection', 'draft', '2026-01-07T09:00:00Z',
     'Light fabrics and bright colours for the summer.',
     '[{"id":"65a1f0000000000000000031","blockType":"hero","blockName":null,"title":"Summer Collection 2026","subtitle":"Coming soon.","image":null,"cta":null,"ctaLink":null}]'),
    ('90000000-0000-4000-8000-000000000005', 'riyadh-eats', NULL, 'Home', 'home', 'published', '2026-01-05T11:00:00Z',
     'Traditional Saudi dishes, fresh every day.',
     '[{"id":"65a2f0000000000000000001","blockType":"hero","blockName":null,"title":"Riyadh Eats","subtitle":"Kabsa, jareesh and fresh bread, every day.","image":null,"cta":"See the menu","ctaLink":"/menu"},
       {"id":"65a2f0000000000000000002","blockType":"richText","blockName":null,"content":{"root":{"type":"root","format":"","indent":0,"version":1,"direction":"ltr","children":[{"type":"paragraph","format":"","indent":0,"version":1,"direction":"ltr","textFormat":0,"children":[{"type":"text","text":"Family recipes cooked over slow fire since 1998.","format":0,"style":"","mode":"normal","detail":0,"version":1}]}]}}}]'),
    ('90000000-0000-4000-8000-000000000006', 'riyadh-eats', NULL, 'Our Kitchen', 'about', 'published', '2026-01-05T12:00:00Z',
     'Meet the cooks behind Riyadh Eats.',
     '[{"id":"65a2f0000000000000000011","blockType":"richText","blockName":null,"content":{"root":{"type":"root","format":"","indent":0,"version":1,"direction":"ltr","children":[{"type":"paragraph","format":"","indent":0,"version":1,"direction":"ltr","textFormat":0,"children":[{"type":"text","text":"Our kitchen team of twelve cooks everything in house.","format":0,"style":"","mode":"normal","detail":0,"version":1}]}]}}},
       {"id":"65a2f0000000000000000012","blockType":"cta","blockName":null,"heading":"Hungry?","text":"Order for pickup or delivery.","label":"Order now","link":"/order","style":"primary"}]'),
    ('90000000-0000-4000-8000-000000000007', 'riyadh-eats', 'downtown', 'Downtown Menu', 'menu', 'published', '2026-01-06T11:00:00Z',
     'The menu of Riyadh Eats Downtown.',
     '[{"id":"65a2f0000000000000000021","blockType":"hero","blockName":null,"title":"Downtown Menu","subtitle":"Served 12:00–01:00.","image":null,"cta":null,"ctaLink":null},
       {"id":"65a2f0000000000000000022","blockType":"richText","blockName":"Dishes","content":{"root":{"type":"root","format":"","indent":0,"version":1,"direction":"ltr","children":[{"type":"paragraph","format":"","indent":0,"version":1,"direction":"ltr","textFormat":0,"children":[{"type":"text","text":"Chicken kabsa, lamb mandi, jareesh, saleeg and fresh dates.","format":0,"style":"","mode":"normal","detail":0,"version":1}]}]}}}]'),
    ('90000000-0000-4000-8000-000000000008', 'riyadh-eats', NULL, 'Ramadan Iftar Menu', 'ramadan-iftar', 'draft', '2026-01-07T11:00:00Z',
     'Iftar boxes for the holy month.',
     '[{"id":"65a2f0000000000000000031","blockType":"hero","blockName":null,"title":"Ramadan Iftar Menu","subtitle":"Draft — prices to be confirmed.","image":null,"cta":null,"ctaLink":null}]')
  ) AS v (id, tenant, store, title, slug, status, created_at, seo_description, layout)
  JOIN tenants t ON t.handle = v.tenant
  LEFT JOIN stores s ON s.tenant_id = t.id AND s.handle = v.store
 WHERE v.store IS NULL OR s.id IS NOT NULL
ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Posts: 2 published + 1 draft per tenant
-- ---------------------------------------------------------------------------------------------
INSERT INTO posts (id, tenant_id, title, slug, excerpt, content, tags, status, published_at, created_at, updated_at)
SELECT v.id::uuid, t.id, v.title, v.slug, v.excerpt,
       jsonb_build_object('root', jsonb_build_object(
           'type', 'root', 'format', '', 'indent', 0, 'version', 1, 'direction', 'ltr',
           'children', jsonb_build_array(jsonb_build_object(
               'type', 'paragraph', 'format', '', 'indent', 0, 'version', 1, 'direction', 'ltr', 'textFormat', 0,
               'children', jsonb_build_array(jsonb_build_object(
                   'type', 'text', 'text', v.body, 'format', 0, 'style', '', 'mode', 'normal', 'detail', 0, 'version', 1)))))),
       v.tags::text[], v.status,
       CASE WHEN v.status = 'published' THEN v.created_at::timestamptz + interval '2 hours' END,
       v.created_at::timestamptz, v.created_at::timestamptz
  FROM (VALUES
    ('a0000000-0000-4000-8000-000000000001', 'fashionista-sa', 'Five Ways to Style an Abaya This Season', 'five-ways-to-style-an-abaya',
     'Belts, layers and colour: five looks for the new season.', 'From belted silhouettes to layered kimonos, here are five looks we love.',
     '{style,abaya}', 'published', '2026-01-08T09:00:00Z'),
    ('a0000000-0000-4000-8000-000000000002', 'fashionista-sa', 'Behind the Seams: Our Riyadh Atelier', 'behind-the-seams',
     'A visit to the workshop where every piece is finished by hand.', 'Every Fashionista piece passes through our atelier in Olaya.',
     '{atelier,craft}', 'published', '2026-01-09T09:00:00Z'),
    ('a0000000-0000-4000-8000-000000000003', 'fashionista-sa', 'Winter Lookbook', 'winter-lookbook',
     'Warm fabrics for cool desert evenings.', 'Draft: photos pending.',
     '{lookbook}', 'draft', '2026-01-10T09:00:00Z'),
    ('a0000000-0000-4000-8000-000000000004', 'riyadh-eats', 'The Secret of a Great Kabsa', 'secret-of-a-great-kabsa',
     'Spices, rice and patience: how we cook our signature dish.', 'Our kabsa starts with a spice blend roasted every morning.',
     '{recipes,kabsa}', 'published', '2026-01-08T11:00:00Z'),
    ('a0000000-0000-4000-8000-000000000005', 'riyadh-eats', 'Coffee Culture in Saudi Arabia', 'saudi-coffee-culture',
     'Cardamom, dates and hospitality.', 'Saudi coffee is served with dates as a sign of welcome.',
     '{coffee,culture}', 'published', '2026-01-09T11:00:00Z'),
    ('a0000000-0000-4000-8000-000000000006', 'riyadh-eats', 'Opening Soon in Al Malqa', 'opening-soon-al-malqa',
     'A second branch in the north of the city.', 'Draft: opening date to be confirmed.',
     '{news}', 'draft', '2026-01-10T11:00:00Z')
  ) AS v (id, tenant, title, slug, excerpt, body, tags, status, created_at)
  JOIN tenants t ON t.handle = v.tenant
ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Product content: one per tenant
-- ---------------------------------------------------------------------------------------------
INSERT INTO product_content (id, tenant_id, store_id, medusa_product_id, handle, medusa_variant_ids, sync_status,
                             title, features, specifications, content_blocks, seo_title, seo_description,
                             editorial_status, tags)
SELECT v.id::uuid, t.id, s.id, v.medusa_product_id, v.handle, v.variants::text[], 'pending',
       v.title, v.features::text[], v.specifications::jsonb, v.content_blocks::jsonb, v.title, v.seo_description,
       'published', v.tags::text[]
  FROM (VALUES
    ('b0000000-0000-4000-8000-000000000001', 'fashionista-sa', 'main', 'prod_01JDEMOFASHIONABAYA0001', 'classic-black-abaya',
     '{variant_01JDEMOABAYA0001S,variant_01JDEMOABAYA0001M,variant_01JDEMOABAYA0001L}',
     'Classic Black Abaya', '{"Breathable crepe","Hidden pockets","Machine washable"}',
     '[{"id":"65a1c0000000000000000001","label":"Fabric","value":"Crepe, 100% polyester"},{"id":"65a1c0000000000000000002","label":"Origin","value":"Made in Saudi Arabia"}]',
     '[{"id":"65a1c0000000000000000011","blockType":"textBlock","blockName":null,"heading":"Everyday elegance","content":{"root":{"type":"root","format":"","indent":0,"version":1,"direction":"ltr","children":[{"type":"paragraph","format":"","indent":0,"version":1,"direction":"ltr","textFormat":0,"children":[{"type":"text","text":"A timeless cut that works from morning to evening.","format":0,"style":"","mode":"normal","detail":0,"version":1}]}]}}}]',
     'A timeless black abaya in breathable crepe.', '{abaya,bestseller}'),
    ('b0000000-0000-4000-8000-000000000002', 'riyadh-eats', 'downtown', 'prod_01JDEMORIYADHEATSKABSA01', 'chicken-kabsa-family-meal',
     '{variant_01JDEMOKABSA01REG,variant_01JDEMOKABSA01LRG}',
     'Chicken Kabsa Family Meal', '{"Serves four","Includes salad and dates"}',
     '[{"id":"65a2c0000000000000000001","label":"Serves","value":"4 people"},{"id":"65a2c0000000000000000002","label":"Spice level","value":"Mild"}]',
     '[{"id":"65a2c0000000000000000011","blockType":"videoEmbed","blockName":null,"url":"https://video.example.com/kabsa","caption":"How we cook it"}]',
     'Our signature chicken kabsa for the whole family.', '{kabsa,family}')
  ) AS v (id, tenant, store, medusa_product_id, handle, variants, title, features, specifications, content_blocks, seo_description, tags)
  JOIN tenants t ON t.handle = v.tenant
  LEFT JOIN stores s ON s.tenant_id = t.id AND s.handle = v.store
 WHERE v.store IS NULL OR s.id IS NOT NULL
ON CONFLICT DO NOTHING;
