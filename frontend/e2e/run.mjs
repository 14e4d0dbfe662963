// End-to-end tests of both dashboards in Debian's chromium (driven by
// playwright-core) against a real local cluster started with
// scripts/cluster.sh. Set TESSERA_URL to test a cluster that already runs.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// Screenshots of both dashboards at desktop and phone width (linked from the README).
const shots = join(root, 'docs', 'screenshots');
const sha = (b) => createHash('sha256').update(b).digest('hex');
const results = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
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

async function startCluster() {
  if (process.env.TESSERA_URL) return { url: process.env.TESSERA_URL, stop: async () => {} };
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-e2e-'));
  const child = spawn(join(root, 'scripts', 'cluster.sh'), [], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      TESSERA_HTTP_PORT: String(port),
      TESSERA_PORT_BASE: String(20000 + (port % 20000)),
      TESSERA_DATA_DIR: dataDir,
      TESSERA_STATIC_DIR: join(root, 'frontend', 'dist'),
      TESSERA_HEARTBEAT_INTERVAL_MS: '300',
      TESSERA_DEAD_AFTER_MS: '3000',
    },
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
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
  } catch (e) {
    console.error(output);
    await stop();
    throw e;
  }
  return { url, stop };
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
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
}

const cluster = await startCluster();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
});
const work = mkdtempSync(join(tmpdir(), 'tessera-e2e-files-'));
try {
  const big = randomBytes(6 * 1024 * 1024);
  const small = Buffer.from('hello from the browser test\n'.repeat(100));
  writeFileSync(join(work, 'big-photo.jpg'), big);
  writeFileSync(join(work, 'notes.txt'), small);

  await test('user dashboard: upload, list, download, delete, usage', async () => {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    const errors = [];
    watchConsole(page, errors);
    page.on('dialog', (d) => d.accept());
    await page.goto(cluster.url + '/');
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
    await context.close();
  });

  await test('admin dashboard: nodes, fail heals without reload, add node', async () => {
    const page = await browser.newPage();
    const errors = [];
    watchConsole(page, errors);
    await page.goto(cluster.url + '/admin');
    await poll('4 healthy nodes', async () => (await page.locator('[data-testid=node-row][data-health=healthy]').count()) === 4);
    await page.getByTestId('controller-row').first().waitFor();
    if ((await page.getByTestId('controller-row').count()) !== 3) throw new Error('expected 3 controllers');

    // Fail the node holding the most replicas, so some chunk loses a copy.
    const { nodes } = await (await page.request.get(cluster.url + '/admin/nodes')).json();
    const victim = nodes.reduce((a, b) => (b.chunks > a.chunks ? b : a)).node_id;
    await page.getByRole('button', { name: `Fail ${victim}` }).click();
    await page.locator(`[data-testid=node-row][data-node=${victim}]:not([data-health=healthy])`).waitFor();
    await poll('under-replicated count rises', async () => Number(await page.getByTestId('chunks-under').innerText()) > 0, 20000);
    await poll('under-replicated back to 0 without reload', async () => Number(await page.getByTestId('chunks-under').innerText()) === 0, 60000);

    await page.getByRole('button', { name: 'Add node' }).click();
    await poll('a fifth node', async () => (await page.getByTestId('node-row').count()) === 5, 90000);
    await screenshots(page, 'admin');
    if (errors.length) throw new Error(errors.join('\n'));
    await page.close();
  });
} finally {
  await browser.close();
  await cluster.stop();
  rmSync(work, { recursive: true, force: true });
}

const failed = results.filter((r) => !r.ok);
console.log(`\n${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
