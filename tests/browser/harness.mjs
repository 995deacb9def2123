// Browser test harness: a real `tagstream serve` (debug build) on a simulated population, users
// made with `tagstream users add`, and headless Debian Chromium driven by playwright-core.

import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// The cargo target directory: CARGO_TARGET_DIR when set (as cargo itself does), else ./target.
const TARGET = process.env.CARGO_TARGET_DIR || join(ROOT, 'target');
export const ARTIFACTS = join(TARGET, 'browser-artifacts');
// The debug build, as the tests use; TAGSTREAM_PROFILE=release for measurements.
const BIN = join(TARGET, process.env.TAGSTREAM_PROFILE || 'debug');
const TAG_KEY = 'browser-test-tag-key-0123456789abcdef'; // the server wants >= 32 bytes
const ADMIN_TOKEN = 'browser-test-admin-token';
/** The simulated population: small, with GPS, RF and alcohol tags, crimes and violations. */
export const SIM = ['--tags', '16', '--days', '2', '--seed', '5', '--hits', '2'];
export const FORCE = 'AvonSomerset';
/** The synthetic street archive the demo serves (scripts/basemap-build.sh). */
export const DEMO_STREETS = join(ROOT, 'fixtures', 'basemap', 'demo-streets.mbtiles');

const require = createRequire(join(ROOT, 'web', 'package.json'));
const { chromium } = require('playwright-core');

function run(bin, args) {
  return execFileSync(join(BIN, bin), args, { encoding: 'utf8', env: { ...process.env, TAGSTREAM_TAG_KEY: TAG_KEY } });
}

/** Generates the population, creates users, starts the server (`serveArgs`: more flags for it). */
export async function startServer({ serveArgs = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tagstream-browser-'));
  const sim = join(dir, 'sim');
  run('tagsim', ['generate', ...SIM, '--out', sim]);
  const orders = JSON.parse(readFileSync(join(sim, 'orders.json'), 'utf8'));
  const conditions = (id) => orders.orders.filter((o) => o.person === id).flatMap((o) => o.conditions.map((c) => c.type));
  const trailPeople = orders.people.map((p) => p.id).filter((id) => conditions(id).includes('trail'));
  const alcoholPeople = orders.people.map((p) => p.id).filter((id) => conditions(id).includes('alcohol'));
  const caseload = [...trailPeople.slice(0, 3), ...alcoholPeople.slice(0, 1)];
  const outsider = orders.people.map((p) => p.id).find((id) => !caseload.includes(id));
  const data = join(dir, 'data');
  mkdirSync(data);
  const user = (name, role, ...extra) =>
    JSON.parse(run('tagstream', ['users', 'add', '--data-dir', data, '--name', name, '--role', role, ...extra])).token;
  const tokens = {
    hub: user('hub-anna', 'hub'),
    practitioner: user('om-priya', 'practitioner', '--caseload', caseload.join(',')),
    police: user('pc-dave', 'police', '--force', FORCE),
    admin: ADMIN_TOKEN,
  };
  const child = spawn(join(BIN, 'tagstream'), ['serve', '--data-dir', data, '--orders', join(sim, 'orders.json'),
    '--ingest-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0', ...serveArgs], {
    env: { ...process.env, TAGSTREAM_TAG_KEY: TAG_KEY, TAGSTREAM_ADMIN_TOKEN: ADMIN_TOKEN, RUST_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
    cwd: ROOT,
  });
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`tagstream serve exited with ${code}`)));
  });
  const listening = JSON.parse(line);
  return {
    dir, sim, orders, tokens, caseload, outsider, trailPeople, alcoholPeople,
    url: `http://${listening.http_addr}`,
    ingest: listening.ingest_addr,
    /** Streams the simulated tags into the server as fast as it acknowledges them. */
    streamTags() {
      return run('tagsim', ['stream', ...SIM, '--connect', listening.ingest_addr, '--key', TAG_KEY, '--speed', '0', '--progress-s', '0']);
    },
    /** An API call as `role` (purpose stated). */
    async api(role, path, init = {}) {
      const res = await fetch(`http://${listening.http_addr}${path}`, {
        ...init,
        headers: { Authorization: `Bearer ${tokens[role]}`, 'X-Purpose': 'browser test', ...(init.headers || {}) },
      });
      return { status: res.status, body: await res.text() };
    },
    stop() {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Debian's Chromium, headless, with no calls home (playwright gives it a fresh profile). */
export async function startBrowser() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return { browser, close: () => browser.close() };
}

/** A fresh page at laptop size, UK time, failing the test on any page error. */
export async function newPage(browser, errors) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, timezoneId: 'Europe/London', locale: 'en-GB', acceptDownloads: true });
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  // Refused requests are listed by URL (a test removes the ones it expects); the browser's own
  // console line for them says less.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => { if (r.status() >= 400) errors.push(`HTTP ${r.status()} ${new URL(r.url()).pathname}`); });
  // Nothing may be loaded from anywhere but the console's own server.
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (!['127.0.0.1', 'localhost'].includes(u.hostname) && !['data:', 'blob:'].includes(u.protocol)) errors.push(`outside request: ${r.url()}`);
  });
  return page;
}

/** Signs in on the console's page with a token; waits for the role's page. */
export async function signIn(page, url, token, role) {
  await page.goto(url);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForSelector(`body[data-role="${role}"]`);
}

/** Removes the expected refusals (e.g. 'HTTP 403 /v1/people/P9') from the page's errors. */
export function expectRefused(errors, pattern) {
  const rest = errors.filter((e) => !pattern.test(e));
  errors.splice(0, errors.length, ...rest);
}

/**
 * Saves a screenshot of the page, and (except for a failed test's) checks the page as it is for
 * accessibility: every place a test keeps a picture of is a page people use, and each must have
 * no serious or critical axe-core violation.
 */
export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
  if (name.startsWith('failed-')) return;
  const problems = await accessibilityProblems(page);
  if (problems.length) throw new Error(`accessibility problems on ${name}:\n${problems.join('\n')}`);
}

const AXE = join(ROOT, 'web', 'node_modules', 'axe-core', 'axe.min.js');

/**
 * Runs axe-core (WCAG 2 A and AA rules) over the page as it is and returns the serious and
 * critical violations as lines ("rule: target — help"). Injected through the DevTools protocol,
 * which the page's Content-Security-Policy does not govern.
 */
export async function accessibilityProblems(page) {
  await page.evaluate(readFileSync(AXE, 'utf8'));
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } });
    return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(' ')} — ${v.help}`));
  });
  return violations;
}
