// Admin UI flows in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core).
// Usage: node admin.spec.mjs <base-url>   (env: ADMIN_EMAIL, ADMIN_PASSWORD, TENANT_A, TENANT_A_NAME,
// TENANT_B, TENANT_ADMIN_EMAIL, TENANT_ADMIN_PASSWORD, OTHER_PAGE_ID, WEBHOOK_LOG_ID, ARTIFACTS, and the
// test OIDC provider: IDP_BASE, KC_ADMIN_USER, KC_ADMIN_NAME, KC_ADMIN_EMAIL, KC_BUYER_USER,
// KC_BUYER_EMAIL). Exits non-zero on failure.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';

const base = process.argv[2];
const env = process.env;
const browser = await chromium.launch({ executablePath: env.CHROMIUM_PATH || '/usr/bin/chromium', headless: true });
const results = [];

async function flow(name, fn) {
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 }, locale: 'en-US' });
  const page = await context.newPage();
  try {
    await fn(page, context);
    results.push(`ok ${name}`);
  } catch (e) {
    results.push(`FAIL ${name}: ${e.stack || e}`);
  } finally {
    await context.close();
  }
}

async function signIn(page, email, password) {
  await page.goto(`${base}/admin`);
  assert.match(page.url(), /\/admin\/login$/);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/admin`);
}

await flow('local sign-in', async (page) => {
  await signIn(page, env.ADMIN_EMAIL, env.ADMIN_PASSWORD);
  assert.equal(await page.locator('h1').textContent(), 'Dashboard');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${base}/admin/login`);
});

// The provider approves whoever the browser's IdP session names (as Keycloak does with SSO).
async function idpSession(page, user) {
  await page.goto(`${env.IDP_BASE}/test/sso/${user}`);
  assert.match(await page.locator('#sso').textContent(), new RegExp(user));
}

async function sessionCookie(context) {
  return (await context.cookies(base)).find((c) => c.name === 'payload-token' && c.value !== '');
}

await flow('Keycloak sign-in lands on the tenant dashboard, then signs out', async (page, context) => {
  await idpSession(page, env.KC_ADMIN_USER);
  await page.goto(`${base}/admin/login`);
  await page.getByRole('link', { name: 'Sign in with Keycloak' }).click();
  await page.waitForURL(`${base}/admin`);
  assert.equal(await page.locator('h1').textContent(), 'Dashboard');
  assert.equal(await page.locator('#user-name').textContent(), env.KC_ADMIN_NAME);
  assert.equal(await page.locator('#user-email').textContent(), env.KC_ADMIN_EMAIL);
  // The token's client role (tenant-admin) and tenant claim: Fashionista's admin, no selector.
  assert.equal(await page.locator('#current-tenant').textContent(), env.TENANT_A_NAME);
  assert.equal(await page.locator('#tenant-select').count(), 0);
  const cookie = await sessionCookie(context);
  assert.ok(cookie && cookie.httpOnly, 'an HttpOnly session cookie');
  await page.goto(`${base}/admin/c/pages?limit=100`);
  const rows = await page.locator('tr[data-id]').count();
  assert.ok(rows > 0);
  const res = await page.request.get(`${base}/api/pages/count?where[tenant][equals]=${env.TENANT_A}`);
  assert.equal(rows, (await res.json()).totalDocs);
  assert.equal(await page.locator(`tr[data-id="${env.OTHER_PAGE_ID}"]`).count(), 0);
  assert.equal((await page.goto(`${base}/admin/c/pages/${env.OTHER_PAGE_ID}`)).status(), 404);
  await page.goto(`${base}/admin`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${base}/admin/login`);
  assert.equal(await sessionCookie(context), undefined);
  await page.goto(`${base}/admin`);
  assert.match(page.url(), /\/admin\/login$/);
});

await flow('Keycloak user without an admin role gets the no-access page', async (page, context) => {
  await idpSession(page, env.KC_BUYER_USER);
  await page.goto(`${base}/admin/login`);
  await page.getByRole('link', { name: 'Sign in with Keycloak' }).click();
  await page.waitForURL(`${base}/admin`);
  assert.equal(await page.locator('h1').textContent(), 'No access');
  assert.equal(await page.locator('#user-email').textContent(), env.KC_BUYER_EMAIL);
  assert.equal(await page.locator('nav.side').count(), 0);
  assert.equal((await page.goto(`${base}/admin/c/pages`)).status(), 403);
});

await flow('Keycloak callback with a tampered state is refused', async (page, context) => {
  await idpSession(page, env.KC_ADMIN_USER);
  // Playwright cannot rewrite a redirect inside a navigation chain, so the two redirects
  // (app → IdP → callback) are taken with the context's own request client (same cookie jar:
  // the flow cookie lands in the browser), and the browser opens the callback link.
  async function callbackLink() {
    const start = await page.request.get(`${base}/admin/login/keycloak`, { maxRedirects: 0 });
    assert.equal(start.status(), 303);
    const idp = await page.request.get(start.headers().location, { maxRedirects: 0 });
    assert.equal(idp.status(), 302);
    return new URL(idp.headers().location);
  }
  const forged = await callbackLink();
  forged.searchParams.set('state', `${forged.searchParams.get('state')}00`);
  const refused = await page.goto(forged.toString());
  assert.equal(refused.status(), 400);
  assert.match(await page.locator('#login-error').textContent(), /could not be verified/);
  assert.equal(await sessionCookie(context), undefined);
  await page.goto(`${base}/admin`);
  assert.match(page.url(), /\/admin\/login$/);
  // The same steps untampered do sign in (so the refusal was the state's).
  const genuine = await callbackLink();
  await page.goto(genuine.toString());
  await page.waitForURL(`${base}/admin`);
  assert.equal(await page.locator('#user-email').textContent(), env.KC_ADMIN_EMAIL);
});

// A 1×1 PNG (sniffed by its bytes on the server).
const PIXEL = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

await flow('upload a file in the media form, see it listed, fetch it over REST', async (page) => {
  await signIn(page, env.ADMIN_EMAIL, env.ADMIN_PASSWORD);
  await page.goto(`${base}/admin/c/media/new`);
  assert.equal(await page.getAttribute('form.doc', 'enctype'), 'multipart/form-data');
  await page.fill('#f-alt', 'A browser pixel');
  await page.selectOption('#f-tenant', env.TENANT_A);
  await page.setInputFiles('#f-file', { name: 'browser-pixel.png', mimeType: 'image/png', buffer: PIXEL });
  await page.click('#save');
  await page.waitForURL(/\/admin\/c\/media\/[0-9a-f-]{36}\?msg=created$/);
  const id = page.url().split('/').pop().split('?')[0];
  assert.equal(await page.locator('#current-file').textContent(), 'browser-pixel.png');
  await page.goto(`${base}/admin/c/media`);
  assert.equal(await page.locator(`tr[data-id="${id}"]`).count(), 1);
  const doc = await (await page.request.get(`${base}/api/media/${id}`)).json();
  assert.equal(doc.filename, 'browser-pixel.png');
  assert.equal(doc.mimeType, 'image/png');
  assert.equal(doc.width, 1);
  const file = await page.request.get(`${base}${new URL(doc.url).pathname}`);
  assert.equal(file.status(), 200);
  assert.equal(file.headers()['content-type'], 'image/png');
  assert.ok(Buffer.from(await file.body()).equals(PIXEL), 'the stored bytes are the uploaded ones');
});

await flow('upload a new hero image from a page form', async (page) => {
  await signIn(page, env.ADMIN_EMAIL, env.ADMIN_PASSWORD);
  await page.goto(`${base}/admin/c/pages/new`);
  await page.selectOption('#f-tenant', env.TENANT_A);
  await page.fill('#f-title', 'Browser hero upload');
  await page.fill('#f-slug', 'browser-hero-upload');
  await page.selectOption('#f-layout-add', 'hero');
  await page.getByRole('button', { name: 'Add block' }).click();
  await page.fill('#f-layout-0-title', 'With a new image');
  await page.setInputFiles('#f-layout-0-image-file', { name: 'hero-pixel.png', mimeType: 'image/png', buffer: PIXEL });
  await page.fill('#f-layout-0-image-alt', 'Hero pixel');
  await page.click('#save');
  await page.waitForURL(/\/admin\/c\/pages\/[0-9a-f-]{36}\?msg=created$/);
  const id = page.url().split('/').pop().split('?')[0];
  // The new file is the block's selected image.
  const selected = await page.locator('#f-layout-0-image option:checked').textContent();
  assert.equal(selected, 'hero-pixel.png');
  const doc = await (await page.request.get(`${base}/api/pages/${id}?depth=1`)).json();
  assert.equal(doc.layout[0].image.filename, 'hero-pixel.png');
  assert.equal(doc.layout[0].image.alt, 'Hero pixel');
  assert.equal(doc.layout[0].image.tenant.id ?? doc.layout[0].image.tenant, env.TENANT_A);
});

await flow('super admin switches tenant and sees only its pages', async (page) => {
  await signIn(page, env.ADMIN_EMAIL, env.ADMIN_PASSWORD);
  await page.selectOption('#tenant-select', env.TENANT_A);
  await page.getByRole('button', { name: 'Switch' }).click();
  await page.waitForURL(`${base}/admin`);
  const current = await page.locator('#current-tenant').textContent();
  assert.notEqual(current, 'All tenants');
  await page.goto(`${base}/admin/c/pages?limit=100`);
  const rows = await page.locator('tr[data-id]').count();
  const res = await page.request.get(`${base}/api/pages/count?where[tenant][equals]=${env.TENANT_A}`);
  assert.equal(rows, (await res.json()).totalDocs);
  assert.equal(await page.locator(`tr[data-id="${env.OTHER_PAGE_ID}"]`).count(), 0);
});

await flow('tenant admin never sees another tenant', async (page) => {
  await signIn(page, env.TENANT_ADMIN_EMAIL, env.TENANT_ADMIN_PASSWORD);
  assert.equal(await page.locator('#tenant-select').count(), 0);
  await page.goto(`${base}/admin/c/pages?limit=100`);
  assert.equal(await page.locator(`tr[data-id="${env.OTHER_PAGE_ID}"]`).count(), 0);
  await page.goto(`${base}/admin/c/pages/new`);
  const options = await page.locator('#f-tenant option').evaluateAll((os) => os.map((o) => o.value).filter(Boolean));
  assert.deepEqual(options, [env.TENANT_A]);
  const res = await page.goto(`${base}/admin/c/pages/${env.OTHER_PAGE_ID}`);
  assert.equal(res.status(), 404);
});

await flow('validation error inline, typed values kept', async (page) => {
  await signIn(page, env.ADMIN_EMAIL, env.ADMIN_PASSWORD);
  await page.goto(`${base}/admin/c/pages/new`);
  await page.selectOption('#f-tenant', env.TENANT_A);
  await page.fill('#f-slug', 'Bad Slug');
  await page.fill('#f-seo-title', 'Kept SEO title');
  await page.click('#save');
  await page.waitForSelector('#form-errors');
  assert.match(await page.locator('[data-field="title"] .error').textContent(), /required/);
  assert.equal(await page.inputValue('#f-slug'), 'Bad Slug');
  assert.equal(await page.inputValue('#f-seo-title'), 'Kept SEO title');
  assert.equal(await page.getAttribute('#f-title', 'aria-invalid'), 'true');
});

await flow('page with two blocks, reordered, published, read back over REST', async (page) => {
  await signIn(page, env.ADMIN_EMAIL, env.ADMIN_PASSWORD);
  await page.goto(`${base}/admin/c/pages/new`);
  await page.selectOption('#f-tenant', env.TENANT_A);
  await page.fill('#f-title', 'Browser blocks');
  await page.fill('#f-slug', 'browser-blocks');
  await page.selectOption('#f-layout-add', 'hero');
  await page.getByRole('button', { name: 'Add block' }).click();
  await page.fill('#f-layout-0-title', 'Hero first');
  await page.selectOption('#f-layout-add', 'cta');
  await page.getByRole('button', { name: 'Add block' }).click();
  await page.fill('#f-layout-1-label', 'Buy now');
  await page.fill('#f-layout-1-link', '/buy');
  await page.getByRole('button', { name: /Move up Block 2/ }).click();
  assert.equal(await page.inputValue('#f-layout-0-label'), 'Buy now');
  assert.equal(await page.inputValue('#f-layout-1-title'), 'Hero first');
  await page.selectOption('#f-status', 'published');
  await page.click('#save');
  await page.waitForURL(/\/admin\/c\/pages\/[0-9a-f-]{36}\?msg=created$/);
  const id = page.url().split('/').pop().split('?')[0];
  const doc = await (await page.request.get(`${base}/api/pages/${id}`)).json();
  assert.equal(doc.status, 'published');
  assert.deepEqual(doc.layout.map((b) => b.blockType), ['cta', 'hero']);
  assert.equal(doc.layout[1].title, 'Hero first');
});

await flow('API key shown once', async (page) => {
  await signIn(page, env.ADMIN_EMAIL, env.ADMIN_PASSWORD);
  await page.goto(`${base}/admin/c/api-keys/new`);
  await page.fill('#f-name', 'Browser key');
  await page.selectOption('#f-tenant', env.TENANT_A);
  await page.fill('#f-scopes', 'read:pages');
  await page.click('#save');
  await page.waitForSelector('#api-key');
  const key = await page.inputValue('#api-key');
  assert.equal(key.length, 81);
  await page.click('#copy-key');
  assert.equal(await page.locator('#copy-key').textContent(), 'Copied');
  const res = await page.request.get(`${base}/api/pages?limit=1`, { headers: { Authorization: `api-keys API-Key ${key}`, Cookie: '' } });
  assert.equal(res.status(), 200);
  await page.getByRole('link', { name: 'Continue' }).click();
  assert.ok(!(await page.content()).includes(key.slice(17)));
});

await flow('tenant with domains', async (page) => {
  await signIn(page, env.ADMIN_EMAIL, env.ADMIN_PASSWORD);
  await page.goto(`${base}/admin/c/tenants/new`);
  await page.fill('#f-handle', 'browser-tenant');
  await page.fill('#f-name', 'Browser Tenant');
  await page.locator('#f-country option').nth(1).waitFor({ state: 'attached' });
  const country = await page.locator('#f-country option').nth(1).getAttribute('value');
  await page.selectOption('#f-country', country);
  await page.locator('[data-field="subdomains"] button', { hasText: 'Add row' }).click();
  await page.fill('#f-subdomains-0-subdomain', 'browser-tenant');
  await page.check('#f-subdomains-0-isPrimary');
  await page.locator('[data-field="customDomains"] button', { hasText: 'Add row' }).click();
  await page.fill('#f-customDomains-0-domain', 'browser-tenant.example.com');
  await page.click('#save');
  await page.waitForURL(/\/admin\/c\/tenants\/[0-9a-f-]{36}\?msg=created$/);
  const id = page.url().split('/').pop().split('?')[0];
  const doc = await (await page.request.get(`${base}/api/tenants/${id}`)).json();
  assert.equal(doc.subdomains[0].subdomain, 'browser-tenant');
  assert.equal(doc.subdomains[0].isPrimary, true);
  assert.equal(doc.customDomains[0].domain, 'browser-tenant.example.com');
});

await flow('webhook log detail and replay', async (page) => {
  await signIn(page, env.ADMIN_EMAIL, env.ADMIN_PASSWORD);
  await page.goto(`${base}/admin/c/webhook-logs/${env.WEBHOOK_LOG_ID}`);
  assert.match(await page.inputValue('#f-headers'), /x-medusa-signature/);
  await page.getByRole('button', { name: 'Replay' }).click();
  await page.waitForURL(/\?msg=queued$/);
  assert.match(await page.locator('.notice').textContent(), /job queue/);
});

await flow('Arabic interface renders right-to-left', async (page) => {
  await signIn(page, env.ADMIN_EMAIL, env.ADMIN_PASSWORD);
  await page.getByRole('link', { name: 'العربية' }).click();
  await page.waitForURL(`${base}/admin`);
  assert.equal(await page.getAttribute('html', 'dir'), 'rtl');
  assert.equal(await page.getAttribute('html', 'lang'), 'ar');
  assert.equal(await page.locator('h1').textContent(), 'لوحة المعلومات');
  // Laid out right to left: the navigation sits on the right of the content.
  const nav = await page.locator('nav.side').boundingBox();
  const main = await page.locator('main').boundingBox();
  assert.ok(nav.x > main.x, `nav at ${nav.x}, main at ${main.x}`);
  await page.goto(`${base}/admin/c/pages/new`);
  await page.screenshot({ path: `${env.ARTIFACTS || '.'}/admin-arabic-rtl.png`, fullPage: false });
});

await browser.close();
console.log(results.join('\n'));
process.exit(results.some((r) => r.startsWith('FAIL')) ? 1 : 0);
