// The hub's queue as a monitoring centre runs a shift on it (issue 17 items 2, 3 and 5): alerts in
// priority order with urgent ones signalled (tone, tab title) when they arrive live; bulk
// acknowledge; the person in context beside an alert; crime hits refreshing without a reload;
// the session bar gone after signing out. Its own server, so the queue starts empty.
// Run: node --test tests/browser/ (scripts/test.sh does).

import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, startBrowser, newPage, signIn, screenshot } from './harness.mjs';

/** The console's priority of an alert (docs/console.md, "Alert priority"), restated. */
function priority(a) {
  const urgent = ['strap_tamper', 'exclusion_zone_entry', 'inclusion_zone_exit', 'alcohol_removal'];
  const low = ['battery_low', 'environmental_alcohol'];
  const medium = ['hmu_power_loss', 'device_fault', 'device_clock'];
  let p = urgent.includes(a.type) ? 1 : low.includes(a.type) ? 4 : medium.includes(a.type) ? 3 : 2;
  if (a.type === 'curfew_violation' && ['AL09', 'AL11'].includes(a.code)) p = 3;
  if (a.confidence === 'possible') p = Math.min(p + 1, 4);
  return p;
}

describe('hub queue', { concurrency: false }, () => {
  let server;
  let chrome;
  let page;
  let errors = [];

  before(async () => {
    server = await startServer();
    chrome = await startBrowser();
  });
  after(async () => {
    await chrome?.close();
    server?.stop();
  });
  afterEach(async () => {
    await page?.context().close();
    page = null;
    const seen = errors;
    errors = [];
    assert.deepEqual(seen, [], 'the page logged errors or loaded something from outside');
  });

  async function open(role) {
    page = await newPage(chrome.browser, errors);
    await signIn(page, server.url, server.tokens[role], role);
    return page;
  }

  const rows = () => page.locator('[data-testid=alerts] tbody tr');
  /** An instant as the page shows it: UK local time, e.g. "03 Mar, 21:00:05". */
  const ukTime = (t) => page.evaluate((at) => new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/London', day: '2-digit', month: 'short', hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).format(new Date(at)), t);

  /** Every alert once the server has derived them all (the list stops changing). */
  async function settled() {
    let last = '';
    for (let i = 0; i < 100; i++) {
      const now = (await server.api('hub', '/v1/alerts/export')).body;
      if (now && now === last) return now.trim().split('\n').map((l) => JSON.parse(l));
      last = now;
      await new Promise((r) => setTimeout(r, 300));
    }
    throw new Error('the alerts did not settle');
  }

  it('orders the queue by priority and signals new urgent alerts', async () => {
    await open('hub');
    await page.getByTestId('live').getByText('live').waitFor();
    server.streamTags(); // every alert arrives over the stream, after the page caught up
    const all = await settled();
    // Each is signalled once when it is first urgent (a withdrawn one too: it was news).
    const urgent = all.filter((a) => priority(a) === 1);
    assert.ok(urgent.length > 0, 'the simulated population raises urgent alerts');
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=alerts] tbody tr').length >= n,
      Math.min(all.filter((a) => a.review?.state !== 'resolved').length, 300));
    // Open alerts come by priority: urgent first, never a lower one above a higher one.
    const shown = await rows().evaluateAll((trs) => trs.filter((tr) => !tr.classList.contains('withdrawn'))
      .map((tr) => Number(tr.dataset.priority)));
    assert.equal(shown[0], 1);
    assert.deepEqual(shown, [...shown].sort((x, y) => x - y));
    // Each urgent alert raised live was signalled: a tone each, and counted in the tab title.
    await page.waitForFunction(() => Number(document.body.dataset.signals || 0) > 0);
    const signals = Number(await page.evaluate(() => document.body.dataset.signals));
    assert.equal(signals, new Set(urgent.map((a) => a.id)).size);
    assert.match(await page.title(), /^\(\d+\) urgent alerts? · tagstream console$/);
    assert.equal(await rows().first().getAttribute('class').then((c) => c.includes('fresh')), true);
    await screenshot(page, 'hub-priority');

    // Sorting by another column, then back.
    await page.getByRole('columnheader').getByRole('button', { name: /^person/ }).click();
    const people = await rows().evaluateAll((trs) => trs.map((tr) => tr.children[5].firstChild.textContent));
    assert.deepEqual(people, [...people].sort((x, y) => x.localeCompare(y, 'en', { numeric: true })));
    await page.getByRole('columnheader').getByRole('button', { name: /^priority/ }).click();

    // The person search takes any part of a name, any case.
    const somebody = server.orders.people.find((p) => p.name && all.some((a) => a.person === p.id));
    await page.getByLabel('Person').fill(somebody.name.split(' ')[1].toLowerCase());
    const matched = await rows().evaluateAll((trs) => trs.map((tr) => tr.children[5].firstChild.textContent));
    assert.ok(matched.length > 0 && matched.includes(somebody.id));
    await page.getByLabel('Person').fill('');
  });

  it('acknowledges a selection of alerts at once; then only assign and resolve remain', async () => {
    await open('hub');
    await page.getByTestId('live').getByText('live').waitFor();
    await rows().first().waitFor();
    await page.getByLabel('State').selectOption('new');
    const ids = (await rows().evaluateAll((trs) => trs.map((tr) => tr.dataset.alert))).slice(0, 5);
    assert.ok(ids.length >= 2);
    for (const id of ids) await page.getByLabel(`Select alert ${id}`).check();
    await page.getByTestId('bulk').getByText(`${ids.length} selected`).waitFor();
    await page.getByRole('button', { name: 'Acknowledge selected' }).click();
    await page.getByText(`Acknowledged ${ids.length} alerts`).waitFor();
    for (const id of ids) {
      const stored = JSON.parse((await server.api('hub', `/v1/alerts/${id}`)).body);
      assert.equal(stored.alert.review.state, 'acknowledged', id);
    }
    // They left the "new" view; only assign and resolve remain for them.
    await page.getByLabel('State').selectOption('acknowledged');
    await page.locator(`tr[data-alert="${ids[0]}"]`).getByRole('button').click();
    await page.getByRole('button', { name: 'Resolve' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Acknowledge', exact: true }).count(), 0);
    await screenshot(page, 'hub-bulk-acknowledged');
  });

  it('shows the person in context beside an alert', async () => {
    await open('hub');
    await rows().first().waitFor();
    const curfew = server.orders.orders.find((o) => o.conditions.some((c) => c.type === 'curfew'));
    const person = server.orders.people.find((p) => p.id === curfew.person);
    await page.getByLabel('State').selectOption('');
    await page.getByLabel('Person').fill(person.id);
    const theirs = await rows().evaluateAll((trs, id) => trs.filter((tr) => tr.children[5].firstChild.textContent === id)
      .map((tr) => tr.dataset.alert), person.id);
    assert.ok(theirs.length > 0, `alerts of ${person.id}`);
    await page.locator(`tr[data-alert="${theirs[0]}"]`).getByRole('button').click();
    const panel = page.getByTestId('person-panel');
    await panel.getByRole('heading', { name: `${person.name} (${person.id})` }).waitFor();
    const text = await panel.textContent();
    if (person.address) assert.ok(text.includes(person.address), text);
    if (person.offender_manager) assert.ok(text.includes(person.offender_manager), text);
    const slot = curfew.conditions.find((c) => c.type === 'curfew').timetable[0];
    assert.ok(text.includes(`${slot.start}–${slot.end} at ${slot.address}`), text);
    assert.match(text, /Other open alerts \(\d+\)/);
    // Their last contact: the newest reading of any of their tags, in UK local time.
    const record = JSON.parse((await server.api('hub', `/v1/people/${person.id}`)).body);
    assert.ok(record.last_contact, 'the person has sent readings');
    const contact = panel.getByTestId('last-contact').locator('time');
    assert.equal(await contact.getAttribute('datetime'), record.last_contact);
    assert.equal(await contact.textContent(), await ukTime(record.last_contact));
    await screenshot(page, 'hub-person-panel');

    // A curfew alert's breach report downloads as a PDF; other alerts offer none.
    const all = (await server.api('hub', '/v1/alerts/export')).body.trim().split('\n').map((l) => JSON.parse(l));
    const breach = all.find((a) => a.type === 'curfew_violation');
    assert.ok(breach, 'the population has a curfew alert');
    await page.getByLabel('Person').fill(breach.person);
    await page.locator(`tr[data-alert="${breach.id}"]`).getByRole('button').click();
    const [report] = await Promise.all([page.waitForEvent('download'), page.getByTestId('breach-pdf').click()]);
    assert.match(report.suggestedFilename(), /-breach-report\.pdf$/);
    assert.equal((await readFile(await report.path())).subarray(0, 5).toString(), '%PDF-');
    await page.getByText('Breach report (PDF) saved.').waitFor();
    const other = all.find((a) => a.type !== 'curfew_violation' && !a.type.includes('zone') && a.person === breach.person)
      ?? all.find((a) => ['low_battery', 'no_contact', 'strap_tamper'].includes(a.type));
    if (other) {
      await page.getByLabel('Person').fill(other.person);
      await page.locator(`tr[data-alert="${other.id}"]`).getByRole('button').click();
      await page.getByTestId('person-panel').waitFor();
      assert.equal(await page.getByTestId('breach-report').count(), 0, `${other.type} has no breach report`);
    }
  });

  it('lists new crime hits without a reload', async () => {
    await open('hub');
    await page.getByTestId('hits-heading').getByText('(0)').waitFor();
    const crimes = join(server.sim, 'crimes');
    const file = readdirSync(crimes).filter((f) => f.endsWith('.csv')).sort()[0];
    const up = await fetch(`${server.url}/v1/crimes/batches`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${server.tokens.police}`, 'X-Purpose': 'browser test', 'Content-Type': 'text/csv' },
      body: readFileSync(join(crimes, file)),
    });
    assert.equal(up.status, 200, await up.text());
    const pending = JSON.parse((await server.api('hub', '/v1/hits?state=pending')).body);
    assert.ok(pending.length > 0, 'the batch made hits');
    await page.getByTestId('pending-hits').locator('tbody tr').first().waitFor({ timeout: 30_000 });
    assert.equal(await page.getByTestId('pending-hits').locator('tbody tr').count(), pending.length);
    // Certain before possible, then the nearest first.
    const order = await page.getByTestId('pending-hits').locator('tbody tr').evaluateAll((trs) =>
      trs.map((tr) => [tr.children[4].textContent.startsWith('certain') ? 0 : 1, parseFloat(tr.children[5].textContent)]));
    assert.deepEqual(order, [...order].sort((a, b) => a[0] - b[0] || a[1] - b[1]));
  });

  it('hides the session bar after signing out', async () => {
    await open('hub');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').waitFor();
    assert.equal(await page.getByLabel('Purpose of access').isVisible(), false);
    assert.equal(await page.getByRole('button', { name: 'Sign out' }).isVisible(), false);
    assert.equal(await page.getByTestId('who').isVisible(), false);
    await screenshot(page, 'signed-out');
  });
});
