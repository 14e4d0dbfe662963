// End-to-end tests of both dashboards in Debian's chromium (driven by
// playwright-core) against a real local cluster started with
// scripts/cluster.sh. Set TESSERA_URL to test a cluster that already runs,
// with TESSERA_ADMIN_USER (default admin) and TESSERA_ADMIN_PASSWORD.
//
// The cluster this script starts gets a generated admin password
// (TESSERA_ADMIN_PASSWORD). The browser signs in through the login page;
// requests made from node send the admin's bearer token from
// POST /api/auth/login.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// Screenshots of both dashboards at desktop and phone width (linked from the
// README); TESSERA_SCREENSHOT_DIR writes them elsewhere.
const shots = process.env.TESSERA_SCREENSHOT_DIR ?? join(root, 'docs', 'screenshots');
const sha = (b) => createHash('sha256').update(b).digest('hex');
const results = [];

// The admin account: ours when we start the cluster, else from the env.
const admin = process.env.TESSERA_URL
  ? { username: process.env.TESSERA_ADMIN_USER || 'admin', password: process.env.TESSERA_ADMIN_PASSWORD ?? '' }
  : { username: 'admin', password: randomBytes(18).toString('base64url') };
if (!admin.password) {
  console.error('TESSERA_URL is set: set TESSERA_ADMIN_PASSWORD (and TESSERA_ADMIN_USER if not "admin") too');
  process.exit(2);
}
// A user that the admin creates in the admin dashboard.
const alice = { username: 'alice', password: randomBytes(12).toString('base64url') };
// Chromium logs every 4xx answer as a console error. These 401s are the
// dashboards asking "who is signed in?" while nobody is, and a wrong password.
const EXPECTED_401 = ['/api/auth/me', '/api/auth/login'];

/** Whether 127.0.0.1:`port` can be listened on now. */
function portFree(port) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A TESSERA_PORT_BASE whose ports are all free now: the gateway's HTTP on
 * BASE itself, controllers on BASE+1..3, data nodes on BASE+101..105 (the
 * fifth is the one the admin test adds; see scripts/cluster.sh). Bases stay
 * below the kernel's ephemeral range (32768 on), where outgoing connections
 * take their ports: a data node whose port an outgoing connection held could
 * not listen, and the cluster came up with three healthy nodes of four. */
async function freePortBase() {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 10000 + 200 * Math.floor(Math.random() * 110);
    const ports = [0, 1, 2, 3, 101, 102, 103, 104, 105].map((offset) => base + offset);
    let free = true;
    for (const port of ports) free = free && (await portFree(port));
    if (free) return base;
  }
  throw new Error('no free range of ports for the cluster');
}

async function poll(what, check, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** POST /api/auth/login from node: `{ status, retryAfter, body }`. */
async function login(url, { username, password }) {
  const response = await fetch(`${url}/api/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const retryAfter = Number(response.headers.get('retry-after'));
  return { status: response.status, retryAfter: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : 1, body: await response.json().catch(() => null) };
}

/** The admin's bearer token. cluster.sh creates the admin once the cluster is
 * up, so a 401 may only mean "not yet": retry slowly (failed attempts count
 * towards the gateway's rate limit), and honour Retry-After on 429. */
async function adminToken(url) {
  const deadline = Date.now() + 30000;
  for (;;) {
    const { status, retryAfter, body } = await login(url, admin);
    if (status === 200 && typeof body?.token === 'string') {
      if (body.user?.role !== 'admin') throw new Error(`${admin.username} has role ${body.user?.role}, not admin`);
      return body.token;
    }
    if (Date.now() > deadline || (status !== 401 && status !== 429)) {
      throw new Error(`admin login: ${status} ${JSON.stringify(body)}`);
    }
    await new Promise((r) => setTimeout(r, status === 429 ? retryAfter * 1000 : 1000));
  }
}

async function startCluster() {
  if (process.env.TESSERA_URL) return { url: process.env.TESSERA_URL.replace(/\/+$/, ''), stop: async () => {}, output: () => '' };
  const base = await freePortBase();
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-e2e-'));
  const child = spawn(join(root, 'scripts', 'cluster.sh'), [], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      TESSERA_HTTP_PORT: String(base),
      TESSERA_PORT_BASE: String(base),
      TESSERA_DATA_DIR: dataDir,
      TESSERA_STATIC_DIR: join(root, 'frontend', 'dist'),
      TESSERA_HEARTBEAT_INTERVAL_MS: '300',
      TESSERA_DEAD_AFTER_MS: '3000',
      TESSERA_ADMIN_PASSWORD: admin.password,
    },
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const url = `http://127.0.0.1:${base}`;
  const stop = async () => {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    await poll('cluster stopped', () => child.exitCode !== null || child.signalCode !== null, 20000).catch(() => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    });
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await poll('cluster ready', async () => (await fetch(`${url}/readyz`)).ok, 120000);
    // cluster.sh creates the admin after /readyz, then prints this banner.
    await poll('cluster.sh to finish starting', () => output.includes('Tessera is running'), 60000).catch(() => {
      /* adminToken() retries until the account exists */
    });
  } catch (e) {
    console.error(output);
    await stop();
    throw e;
  }
  return { url, stop, output: () => output, logs: join(dataDir, 'logs') };
}

async function test(name, fn) {
  const started = Date.now();
  try {
    await fn();
    results.push({ name, ok: true, ms: Date.now() - started });
    console.log(`ok   ${name}`);
  } catch (e) {
    results.push({ name, ok: false, error: e });
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
    await diagnose();
  }
}

/** What the cluster says of itself when a test fails: its data nodes'
 * health and the last lines of each service's log. */
async function diagnose() {
  try {
    const { nodes } = await (await asAdmin('/admin/nodes')).json();
    console.log('     data nodes: ' + nodes.map((n) => `${n.node_id} ${n.health} (${n.chunks} chunks)`).join(', '));
  } catch (e) {
    console.log(`     data nodes: not available (${e.message ?? e})`);
  }
  // scripts/cluster.sh logs each service to <data>/logs/<service>.log.
  for (const file of cluster.logs && existsSync(cluster.logs) ? readdirSync(cluster.logs).sort() : []) {
    const text = readFileSync(join(cluster.logs, file), 'utf8').replace(/\x1b\[[0-9;]*m/g, '');
    const lines = text.trim().split('\n').slice(-12);
    console.log(`     ${file}, last lines:\n` + lines.map((line) => '     | ' + line).join('\n'));
  }
}

async function screenshots(page, name) {
  mkdirSync(shots, { recursive: true });
  for (const [label, width, height] of [['desktop', 1280, 860], ['phone', 375, 740]]) {
    await page.setViewportSize({ width, height });
    await page.screenshot({ path: join(shots, `${name}-${label}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 860 });
}

function watchConsole(page, errors) {
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const at = msg.location()?.url ?? '';
    if (/status of 401/.test(msg.text()) && EXPECTED_401.some((path) => new URL(at, 'http://x').pathname === path)) return;
    errors.push(`console: ${msg.text()}${at ? ` (${at})` : ''}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
}

/** Signs in through the login page, which must be showing. */
async function signIn(page, { username, password }) {
  await page.getByTestId('login-form').waitFor();
  await page.getByLabel('Username', { exact: true }).fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('user-menu').waitFor();
  const shown = await page.getByTestId('user-name').innerText();
  if (shown !== username) throw new Error(`signed in as ${shown}, not ${username}`);
}

/** Signs in unless this page (its browser context) already is. */
async function ensureSignedIn(page, who) {
  await page.locator('[data-testid=login-form], [data-testid=user-menu]').first().waitFor();
  if (await page.getByTestId('login-form').isVisible()) await signIn(page, who);
}

const cluster = await startCluster();
const adminBearer = await adminToken(cluster.url).catch(async (e) => {
  console.error(cluster.output());
  await cluster.stop();
  throw e;
});
/** fetch from node as the admin. */
const asAdmin = (path, init = {}) =>
  fetch(cluster.url + path, { ...init, headers: { Authorization: `Bearer ${adminBearer}`, ...init.headers } });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
});
const work = mkdtempSync(join(tmpdir(), 'tessera-e2e-files-'));
// The admin's browser: signed in once on the user page, then also used for
// the admin dashboard (the session cookie is shared by the context).
const adminContext = await browser.newContext({ acceptDownloads: true });
try {
  const big = randomBytes(6 * 1024 * 1024);
  const small = Buffer.from('hello from the browser test\n'.repeat(100));
  writeFileSync(join(work, 'big-photo.jpg'), big);
  writeFileSync(join(work, 'notes.txt'), small);

  await test('login page: form, a wrong password shows an error and no files', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors = [];
    watchConsole(page, errors);
    await page.goto(cluster.url + '/');
    await page.getByTestId('login-form').waitFor();
    const username = page.getByLabel('Username', { exact: true });
    const password = page.getByLabel('Password', { exact: true });
    await username.waitFor();
    if ((await password.getAttribute('type')) !== 'password') throw new Error('password input is not type=password');
    await screenshots(page, 'login');

    // Keyboard only: type, Tab to the password, Enter submits.
    await username.focus();
    await page.keyboard.type(admin.username);
    await page.keyboard.press('Tab');
    await page.keyboard.type(`${admin.password}-wrong`);
    await page.keyboard.press('Enter');
    const error = page.getByTestId('login-error');
    await error.waitFor();
    if (!(await error.innerText()).trim()) throw new Error('empty login error');
    await page.getByTestId('login-form').waitFor();
    for (const testId of ['empty', 'file-row', 'usage', 'user-menu']) {
      if (await page.getByTestId(testId).count()) throw new Error(`${testId} shown without signing in`);
    }
    if (await page.getByRole('table', { name: 'Files' }).count()) throw new Error('file list shown without signing in');
    // The gateway agrees: without a session there is nothing to see.
    if ((await fetch(cluster.url + '/api/files')).status !== 401) throw new Error('/api/files answers without a session');
    if (errors.length) throw new Error(errors.join('\n'));
    await context.close();
  });

  await test('user dashboard: admin signs in, upload, list, download, delete, usage', async () => {
    const page = await adminContext.newPage();
    const errors = [];
    watchConsole(page, errors);
    page.on('dialog', (d) => d.accept());
    await page.goto(cluster.url + '/');
    await signIn(page, admin);
    if ((await page.getByTestId('user-role').innerText()) !== 'admin') throw new Error('role not shown as admin');
    await page.getByTestId('empty').waitFor();
    await page.getByTestId('usage').waitFor();
    const usageBefore = await page.getByTestId('usage').innerText();

    await page.getByTestId('file-input').setInputFiles([join(work, 'big-photo.jpg'), join(work, 'notes.txt')]);
    for (const name of ['big-photo.jpg', 'notes.txt']) {
      const row = page.locator(`[data-testid=upload][data-name="${name}"]`);
      await page.locator(`[data-testid=upload][data-name="${name}"][data-state=done]`).waitFor({ timeout: 60000 });
      const pct = await row.getByRole('progressbar').getAttribute('aria-valuenow');
      if (pct !== '100') throw new Error(`${name} progress ${pct}`);
      if (!(await row.getByTestId('upload-percent').innerText()).startsWith('100%')) throw new Error(`${name} percent text`);
    }
    await page.locator('[data-testid=file-row][data-name="big-photo.jpg"]').waitFor();
    await page.locator('[data-testid=file-row][data-name="notes.txt"]').waitFor();
    await poll('usage meter to change', async () => (await page.getByTestId('usage').innerText()) !== usageBefore, 20000);

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download big-photo.jpg' }).click(),
    ]);
    if (download.suggestedFilename() !== 'big-photo.jpg') throw new Error(`download named ${download.suggestedFilename()}`);
    const got = readFileSync(await download.path());
    if (sha(got) !== sha(big)) throw new Error('downloaded bytes differ');

    await page.getByRole('button', { name: 'Delete notes.txt' }).click();
    await page.locator('[data-testid=file-row][data-name="notes.txt"]').waitFor({ state: 'detached' });
    await page.locator('[data-testid=file-row][data-name="big-photo.jpg"]').waitFor();

    await screenshots(page, 'user');
    // Phone width still shows the list and the upload button.
    await page.setViewportSize({ width: 375, height: 740 });
    await page.getByRole('button', { name: 'Upload files' }).waitFor();
    if (errors.length) throw new Error(errors.join('\n'));
    await page.close();
  });

  await test('admin dashboard: create user alice with a quota', async () => {
    // Against a cluster that already runs, alice may be left from a last run.
    const gone = await asAdmin('/admin/users/alice', { method: 'DELETE' });
    if (![204, 404].includes(gone.status)) throw new Error(`DELETE /admin/users/alice: ${gone.status}`);
    const page = await adminContext.newPage();
    const errors = [];
    watchConsole(page, errors);
    await page.goto(cluster.url + '/admin/');
    await ensureSignedIn(page, admin);
    const form = page.getByTestId('create-user');
    await form.getByLabel('Username', { exact: true }).fill(alice.username);
    await form.getByLabel('Password', { exact: true }).fill(alice.password);
    await form.getByLabel('Role', { exact: true }).selectOption('user');
    await form.getByLabel('Quota (GiB)', { exact: true }).fill('1');
    await form.getByRole('button', { name: 'Create user' }).click();
    const row = page.locator('[data-testid=user-row][data-user=alice]');
    await row.waitFor();
    const quota = await row.getByTestId('user-quota').innerText();
    if (quota !== '1.00 GiB') throw new Error(`alice's quota shows ${quota}`);
    const { users } = await (await asAdmin('/admin/users')).json();
    const a = users.find((u) => u.username === 'alice');
    if (a?.role !== 'user' || a.quota_bytes !== 1024 ** 3) throw new Error(`alice is ${JSON.stringify(a)}`);
    // Creating her again is refused, with the gateway's message.
    await form.getByLabel('Username', { exact: true }).fill(alice.username);
    await form.getByLabel('Password', { exact: true }).fill(alice.password);
    await form.getByRole('button', { name: 'Create user' }).click();
    await page.getByTestId('create-user-error').waitFor();
    if (errors.filter((e) => !/status of 409/.test(e)).length) throw new Error(errors.join('\n'));
    await page.close();
  });

  await test('alice: own files only, API token works until revoked, no admin dashboard, sign out', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors = [];
    watchConsole(page, errors);
    page.on('dialog', (d) => d.accept());
    await page.goto(cluster.url + '/');
    await signIn(page, alice);
    if ((await page.getByTestId('user-role').innerText()) !== 'user') throw new Error('role not shown as user');
    // An empty list: admin's big-photo.jpg is not hers.
    await page.getByTestId('empty').waitFor();
    if (await page.getByTestId('file-row').count()) throw new Error('alice sees files that are not hers');
    await poll('quota on the usage meter', async () => (await page.getByTestId('usage-quota').innerText()).includes('of 1.00 GiB'), 20000);

    await page.getByTestId('file-input').setInputFiles(join(work, 'notes.txt'));
    await page.locator('[data-testid=upload][data-name="notes.txt"][data-state=done]').waitFor({ timeout: 60000 });
    await page.locator('[data-testid=file-row][data-name="notes.txt"]').waitFor();
    if ((await page.getByTestId('file-row').count()) !== 1) throw new Error('alice should have exactly one file');
    await poll('quota used to grow', async () => !(await page.getByTestId('usage-quota').innerText()).startsWith('0 B'), 20000);

    // Create a token in the panel; its secret is shown once.
    const tokens = page.getByTestId('tokens');
    await tokens.getByLabel('Label', { exact: true }).fill('e2e-cli');
    await tokens.getByRole('button', { name: 'Create token' }).click();
    const secretBox = page.getByTestId('token-secret');
    await secretBox.waitFor();
    const secret = await secretBox.inputValue();
    if (!secret) throw new Error('no token secret shown');
    if (!/shown again/.test(await page.getByTestId('new-token').innerText())) throw new Error('no "not shown again" note');
    const tokenRow = page.locator('[data-testid=token-row][data-label="e2e-cli"][data-kind=api]');
    await tokenRow.waitFor();
    if ((await tokenRow.innerText()).includes(secret)) throw new Error('the token list shows the secret');

    // A program with the token sees alice's files, and only hers.
    const withToken = () => fetch(cluster.url + '/api/files', { headers: { Authorization: `Bearer ${secret}` } });
    const listed = await withToken();
    if (listed.status !== 200) throw new Error(`GET /api/files with alice's token: ${listed.status}`);
    const names = (await listed.json()).files.map((f) => f.name);
    if (names.join() !== 'notes.txt') throw new Error(`alice's token lists ${names.join()}`);

    // Revoke it in the panel: refused at once.
    await tokenRow.getByRole('button', { name: /^Revoke/ }).click();
    await tokenRow.waitFor({ state: 'detached' });
    await poll('the revoked token to be refused', async () => (await withToken()).status === 401, 5000);

    // The admin dashboard is not for her.
    await page.goto(cluster.url + '/admin/');
    const refusal = page.getByTestId('needs-admin');
    await refusal.waitFor();
    if (!(await refusal.innerText()).includes('This dashboard needs the admin role')) throw new Error('no admin-role message');
    await refusal.getByRole('link', { name: 'Go to my files' }).waitFor();

    // Sign out returns to the login page, and stays there on reload.
    await page.goto(cluster.url + '/');
    await page.getByTestId('user-menu').getByRole('button', { name: 'Sign out' }).click();
    await page.getByTestId('login-form').waitFor();
    if (await page.getByTestId('file-row').count()) throw new Error('files still shown after sign-out');
    await page.reload();
    await page.getByTestId('login-form').waitFor();
    if (await page.getByTestId('user-menu').count()) throw new Error('still signed in after reload');
    if (errors.length) throw new Error(errors.join('\n'));
    await context.close();
  });

  await test('admin dashboard: nodes, fail heals without reload, add node', async () => {
    const page = await adminContext.newPage();
    const errors = [];
    watchConsole(page, errors);
    await page.goto(cluster.url + '/admin');
    await ensureSignedIn(page, admin);
    await poll('4 healthy nodes', async () => (await page.locator('[data-testid=node-row][data-health=healthy]').count()) === 4);
    await page.getByTestId('controller-row').first().waitFor();
    if ((await page.getByTestId('controller-row').count()) !== 3) throw new Error('expected 3 controllers');
    await page.locator(`[data-testid=user-row][data-user="${admin.username}"]`).waitFor();

    // Fail the node holding the most replicas, so some chunk loses a copy.
    const { nodes } = await (await asAdmin('/admin/nodes')).json();
    const victim = nodes.reduce((a, b) => (b.chunks > a.chunks ? b : a)).node_id;
    const shown = async (testId) => Number(await page.getByTestId(testId).innerText());
    const completedBefore = await shown('tasks-completed');
    await page.getByRole('button', { name: `Fail ${victim}` }).click();
    await page.locator(`[data-testid=node-row][data-node=${victim}]:not([data-health=healthy])`).waitFor();
    // Repair starts the moment the node is marked failed, and this little
    // data can be copied between two of the page's polls: the page shows
    // either chunks wanting a copy or copies completed since the failure.
    await poll('the heal shows without reload', async () => (await shown('chunks-under')) > 0 || (await shown('tasks-completed')) > completedBefore, 20000);
    await poll('under-replicated back to 0 and copies completed, without reload', async () => (await shown('chunks-under')) === 0 && (await shown('tasks-completed')) > completedBefore, 60000);

    await page.getByRole('button', { name: 'Add node' }).click();
    await poll('a fifth node', async () => (await page.getByTestId('node-row').count()) === 5, 90000);
    await screenshots(page, 'admin');
    if (errors.length) throw new Error(errors.join('\n'));
    await page.close();
  });
} finally {
  await adminContext.close();
  await browser.close();
  await cluster.stop();
  rmSync(work, { recursive: true, force: true });
}

const failed = results.filter((r) => !r.ok);
console.log(`\n${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
