// End-to-end tests of the web console in headless Chromium against the real server: sign-in for
// each role; the hub sees an alert arrive live and resolves it; a practitioner opens a trail,
// plays it back, and is refused someone outside the caseload; police upload a batch with bad rows,
// read the errors, and open a confirmed hit's map; a confirmed hit later withdrawn is shown struck
// through with why, its review controls disabled; a practitioner reads a person's order history.
// Screenshots go to target/browser-artifacts/.
// Run: node --test tests/browser/ (scripts/test.sh does, after the cargo tests).

import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startServer, startBrowser, newPage, signIn, screenshot, expectRefused, DEMO_STREETS } from './harness.mjs';

describe('web console', { concurrency: false }, () => {
  let server;
  let chrome;
  let page;
  let errors = [];

  before(async () => {
    // Served as the demo serves it: maps draw the synthetic streets under the evidence.
    server = await startServer({ serveArgs: ['--tile-archive', DEMO_STREETS] });
    chrome = await startBrowser();
  });
  after(async () => {
    await chrome?.close();
    server?.stop();
  });
  afterEach(async (t) => {
    if (page) {
      if (errors.length) await screenshot(page, `failed-${t.name.replace(/\W+/g, '-')}`);
      await page.context().close();
      page = null;
    }
    const seen = errors;
    errors = [];
    assert.deepEqual(seen, [], 'the page logged errors or loaded something from outside');
  });

  async function open(role) {
    page = await newPage(chrome.browser, errors);
    await signIn(page, server.url, server.tokens[role], role);
    return page;
  }

  // Until the crime hits API is merged, the pages say it is not there (a 404 they expect).
  const noHitsApi = () => expectRefused(errors, /^HTTP 404 \/v1\/(hits|crimes\/batches)$/);

  it('refuses an unknown token and shows why', async () => {
    page = await newPage(chrome.browser, errors);
    await page.goto(server.url);
    await page.getByLabel('API token').fill('not-a-token');
    await page.keyboard.press('Enter');
    await page.getByText('That token was not accepted.').waitFor();
    expectRefused(errors, /^HTTP 401 \/v1\/me$/);
    await screenshot(page, 'signin');
  });

  it('hub: an alert arrives live in the queue and is resolved', async () => {
    await open('hub');
    await page.getByTestId('live').getByText('live').waitFor();
    assert.equal(await page.getByTestId('queue-count').textContent(), '0 of 0 alerts');
    server.streamTags(); // the page is open: every alert now arrives over the stream
    const rows = page.locator('[data-testid=alerts] tbody tr');
    await rows.first().waitFor();
    assert.ok(await rows.count() > 0);
    // Pick a curfew violation (it has a person with a curfew address to draw) if there is one.
    await page.getByLabel('Type').selectOption({ index: 1 });
    const types = await page.getByLabel('Type').locator('option').allTextContents();
    if (types.includes('curfew violation')) await page.getByLabel('Type').selectOption('curfew_violation');
    const row = rows.first();
    const id = await row.getAttribute('data-alert');
    await row.getByRole('button').click();
    await page.locator('[data-testid=alert-map][data-ready=true]').waitFor();
    await screenshot(page, 'hub-alert');
    await page.getByLabel('Outcome').selectOption('reasonable_excuse');
    await page.getByLabel('Resolution notes').fill('Spoke to the person: hospital visit, letter seen');
    await page.getByRole('button', { name: 'Resolve' }).click();
    // Resolved, the queue moves on to the next open alert; the resolved one is under all states.
    await page.getByText(/^Resolved: /).waitFor();
    const stored = JSON.parse((await server.api('hub', `/v1/alerts/${id}`)).body);
    assert.equal(stored.alert.review.state, 'resolved');
    assert.equal(stored.alert.review.outcome, 'reasonable_excuse');
    await page.getByLabel('State').selectOption('');
    await page.locator(`tr[data-alert="${id}"]`).getByRole('button').click();
    await page.getByTestId('alert-state').getByText(/^resolved/).waitFor();
    await page.getByText('Resolved: no further action.').waitFor();
    await page.getByRole('cell', { name: /reasonable excuse/ }).waitFor();
    await screenshot(page, 'hub-resolved');
    noHitsApi();
  });

  it('practitioner: opens a trail and plays it back', async () => {
    await open('practitioner');
    const who = server.caseload[0];
    await page.getByTestId('caseload').getByRole('button', { name: who, exact: true }).click();
    await page.getByLabel('From', { exact: true }).fill('2026-03-02T06:00');
    await page.getByLabel('To', { exact: true }).fill('2026-03-03T06:00');
    await page.getByRole('button', { name: 'Show period' }).click();
    await page.locator('[data-testid=trail-map][data-ready=true]').waitFor();
    const summary = await page.getByTestId('trail-summary').textContent();
    assert.match(summary, /^\d+ positions, \d+ gaps?/);
    const time = page.getByTestId('playback-time');
    const first = await time.textContent();
    assert.match(first, /^A1 · /);
    await page.getByRole('button', { name: 'Play' }).click();
    await page.waitForFunction((t) => document.querySelector('[data-testid=playback-time]').textContent !== t, first);
    await page.getByRole('button', { name: 'Pause' }).click();
    const slider = page.getByLabel('Playback position');
    await slider.focus();
    await page.keyboard.press('End');
    assert.notEqual(await time.textContent(), first);
    await page.getByRole('heading', { name: 'Compliance in the period' }).waitFor();
    await screenshot(page, 'practitioner-trail');
  });

  it('practitioner: sees the sober-day calendar and TAC chart of an alcohol order', async () => {
    await open('practitioner');
    const who = server.caseload.find((id) => server.alcoholPeople.includes(id));
    await page.getByTestId('caseload').getByRole('button', { name: who, exact: true }).click();
    await page.getByLabel('From', { exact: true }).fill('2026-03-02T00:00');
    await page.getByLabel('To', { exact: true }).fill('2026-03-04T00:00');
    await page.getByRole('button', { name: 'Show period' }).click();
    const chart = page.getByTestId('alcohol').getByTestId('tac-chart').first();
    await chart.waitFor();
    // Each reading's UK time and values, on hover and by keyboard.
    const readings = chart.locator('rect.reading');
    const labels = await readings.evaluateAll((rs) => rs.map((r) => [r.dataset.t, r.querySelector('title').textContent]));
    assert.ok(labels.length > 1, 'the period has TAC readings');
    const uk = await page.evaluate((ts) => ts.map((t) => {
      const p = Object.fromEntries(new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/London', day: '2-digit',
        month: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(new Date(t)).map((x) => [x.type, x.value]));
      return `${p.day} ${p.month} ${p.hour}:${p.minute}`;
    }), labels.map(([t]) => t));
    labels.forEach(([t, label], i) => assert.match(label,
      new RegExp(`^${uk[i]} UK time: TAC \\d\\.\\d{3} g/dL, IR -?\\d+\\.\\d\\d V, temperature -?\\d+\\.\\d °C$`), `${t}: ${label}`));
    const readout = page.getByTestId('tac-readout').first();
    const middle = Math.floor(labels.length / 2);
    await readings.nth(middle).hover();
    assert.equal(await readout.textContent(), labels[middle][1]);
    await chart.focus();
    await page.keyboard.press('End');
    assert.equal(await readout.textContent(), labels[labels.length - 1][1]);
    await page.keyboard.press('ArrowLeft');
    assert.equal(await readout.textContent(), labels[labels.length - 2][1]);
    assert.equal(await chart.getAttribute('aria-valuetext'), labels[labels.length - 2][1]);
    await page.getByTestId('alcohol').scrollIntoViewIfNeeded();
    await screenshot(page, 'practitioner-alcohol');
    // The order's sober-day report for the period downloads as a PDF.
    const [report] = await Promise.all([page.waitForEvent('download'), page.getByTestId('sober-report-pdf').first().click()]);
    assert.match(report.suggestedFilename(), /-sober-days-2026-03-02\.pdf$/);
    assert.equal((await readFile(await report.path())).subarray(0, 5).toString(), '%PDF-');
    await page.getByText('Sober-day report (PDF) saved.').first().waitFor();
  });

  it("practitioner: reads a person's order history", async () => {
    await open('practitioner');
    const who = server.caseload[0];
    await page.getByTestId('caseload').getByRole('button', { name: who, exact: true }).click();
    await page.getByTestId('order-history').getByText('Order history').click();
    const rows = page.getByTestId('order-history-table').locator('tbody tr');
    await rows.first().waitFor();
    const text = await page.getByTestId('order-history-table').textContent();
    assert.match(text, /person details recorded/);
    assert.match(text, /tag \S+ fitted \(activation /);
    assert.match(text, /order \S+ recorded: /);
    assert.match(text, /import:/, 'the start-up import is named as who made the change');
    await screenshot(page, 'practitioner-order-history');
  });

  it('practitioner: opens on the latest data, and the calendar has a cell for every day', async () => {
    await open('practitioner');
    const who = server.caseload[0];
    // The caseload says how each person is monitored, their open alerts and their latest data.
    await page.waitForFunction(() => document.querySelector('[data-testid=caseload] tbody')
      && ![...document.querySelectorAll('[data-testid=caseload] tbody td')].some((td) => td.textContent === '…'));
    const status = await page.getByTestId('caseload').locator('tbody tr', { hasText: who }).first().locator('td').allTextContents();
    assert.match(status[2], /GPS/, status.join(' | '));
    assert.match(status[3], /^\d+$/, status.join(' | '));
    assert.match(status[4], /\d\d \w{3}, \d\d:\d\d/, status.join(' | '));
    // Last contact: the newest reading of any kind from any of their tags (event time, UK time).
    const record = JSON.parse((await server.api('practitioner', `/v1/people/${who}`)).body);
    assert.ok(record.last_contact && record.last_contact >= record.data_until, JSON.stringify(record.last_contact));
    const contact = page.getByTestId('caseload').locator('tbody tr', { hasText: who }).first().getByTestId('last-contact').locator('time');
    assert.equal(await contact.getAttribute('datetime'), record.last_contact);
    assert.match(status[5], /^\d\d \w{3}, \d\d:\d\d:\d\d$/, status.join(' | '));
    await page.getByTestId('caseload').getByRole('button', { name: who, exact: true }).click();
    await page.locator('[data-testid=trail-map][data-ready=true]').waitFor();
    // No dates chosen: the period ends at the person's latest position, so it has positions.
    assert.match(await page.getByTestId('trail-summary').textContent(), /^[1-9]\d* positions/);
    const latest = JSON.parse((await server.api('practitioner', `/v1/people/${who}`)).body).data_until;
    assert.ok(latest, 'the person has data');
    // The day timeline: at home, away, no data, with the curfew windows over it.
    const timeline = page.getByTestId('day-timeline');
    await timeline.waitFor();
    assert.ok(await timeline.locator('rect.tl-home, rect.tl-away').count() > 0);
    const curfews = server.orders.orders.filter((o) => o.person === who).flatMap((o) => o.conditions).filter((c) => c.type === 'curfew');
    if (curfews.length) assert.ok(await timeline.locator('rect.tl-curfew').count() > 0);
    const alcohol = server.caseload.find((id) => server.alcoholPeople.includes(id));
    await page.getByTestId('caseload').getByRole('button', { name: alcohol, exact: true }).click();
    const cells = page.getByTestId('calendar').first().locator('li');
    await cells.first().waitFor();
    const texts = await cells.evaluateAll((lis) => lis.map((li) => li.getAttribute('aria-label')));
    const dates = texts.map((t) => t.slice(0, 10));
    for (let i = 1; i < dates.length; i++) {
      const gap = (Date.parse(dates[i]) - Date.parse(dates[i - 1])) / 86400_000;
      assert.equal(gap, 1, `consecutive days: ${dates}`);
    }
    assert.ok(texts.every((t) => /: (sober|drinking|tamper|partial|not worn|awaiting data)/.test(t)), texts.join('\n'));
    await screenshot(page, 'practitioner-latest');
  });

  it('practitioner: cannot open someone outside the caseload', async () => {
    await open('practitioner');
    await page.getByLabel('Person id').fill(server.outsider);
    await page.getByRole('button', { name: 'Open', exact: true }).click();
    await page.getByRole('alert').getByText('Not permitted').waitFor();
    expectRefused(errors, /^HTTP 403 \/v1\/(people|alerts)/);
    await screenshot(page, 'practitioner-refused');
  });

  it('police: uploads a batch with bad rows and reads the errors', async (t) => {
    await open('police');
    const hitsApi = (await server.api('police', '/v1/crimes/batches')).status !== 404;
    if (!hitsApi) {
      await page.getByText('Crime hits are not available').waitFor();
      noHitsApi();
      await screenshot(page, 'police');
      return t.skip('the crime batches API is not on this server yet (being built on main)');
    }
    const dir = join(server.sim, 'crimes');
    const file = readdirSync(dir).sort()[0];
    const csv = readFileSync(join(dir, file), 'utf8') +
      'AvonSomerset,BIAD,Burglary in a dwelling,AVS-BAD,AVS/26/999998,not-a-time,20260302093113,,,51.45,-2.59,WGS84,"bad start"\n' +
      'AvonSomerset,BIAD,Burglary in a dwelling,AVS-BAD,AVS/26/999999,20260302083013,20260302093113,,,95.0,-2.59,WGS84,"latitude out of range"\n';
    await page.getByLabel('Crime batch (CSV)').setInputFiles({ name: file, mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await page.getByRole('button', { name: 'Upload and validate' }).click();
    const errorsTable = page.getByTestId('batch-errors');
    await errorsTable.waitFor();
    assert.ok(await errorsTable.locator('tbody tr').count() >= 2);
    await screenshot(page, 'police-upload');
  });

  it('hub confirms a hit; police open the confirmed hit map', async (t) => {
    if ((await server.api('hub', '/v1/hits')).status === 404) {
      return t.skip('the crime hits API is not on this server yet (being built on main)');
    }
    let pending = [];
    for (let i = 0; i < 50 && !pending.length; i++) {
      pending = JSON.parse((await server.api('hub', '/v1/hits?state=pending')).body);
      if (!pending.length) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(pending.length, 'the uploaded batch gave no hits to review');
    // A hit on someone with a curfew address: the hub's map draws it, police's does not.
    const homes = (id) => server.orders.orders.filter((o) => o.person === id).flatMap((o) => o.conditions)
      .filter((c) => c.type === 'curfew').flatMap((c) => c.addresses || []);
    const opened = pending.find((x) => homes(x.person).length);
    assert.ok(opened, 'a hit on someone with a curfew address');
    await open('hub');
    const list = page.getByTestId('pending-hits');
    await list.locator(`tbody tr[data-hit="${opened.id}"]`).getByRole('button').click();
    await page.locator('[data-testid=hit-map][data-ready=true]').waitFor();
    // Their curfew address, named under the map and shown on it from there.
    const home = homes(opened.person)[0];
    await page.getByTestId('hit-places').getByRole('button', { name: new RegExp(`^Curfew address: ${home.id} \\(`) }).click();
    await page.getByTestId('hit-map').locator('.leaflet-tooltip', { hasText: `Curfew address: ${home.id} (` }).waitFor();
    await page.getByTestId('hit-map').scrollIntoViewIfNeeded();
    // Streets under the evidence, from the local archive (nothing leaves the machine: the
    // harness fails any outside request).
    const tile = page.getByTestId('hit-map').locator('img.leaflet-tile[src*="/console/tiles/"]').first();
    await tile.waitFor();
    await page.waitForFunction((img) => img.complete && img.naturalWidth === 256, await tile.elementHandle());
    // The crime is one keystroke away, and each position is reachable from the table.
    await page.getByTestId('centre-on-crime').focus();
    await page.keyboard.press('Enter');
    await page.getByTestId('hit-map').locator('.leaflet-tooltip', { hasText: /^Crime / }).waitFor();
    await page.getByRole('button', { name: 'A1', exact: true }).click();
    await page.getByTestId('hit-map').locator('.leaflet-tooltip', { hasText: /^A1 .*precision/ }).waitFor();
    // Distance from the crime over time, one point per position with its value on hover.
    const points = page.getByTestId('distance-chart').locator('circle');
    assert.equal(await points.count(), opened.positions.filter((p) => p.distance_m != null).length);
    assert.match(await points.first().locator('title').textContent(), /^A1 .* m from the crime$/);
    await screenshot(page, 'hub-hit-review');
    await page.getByLabel('Reason for the decision').fill('Positions inside the vicinity during the window');
    await page.getByRole('button', { name: 'Confirm hit' }).click();
    await page.getByText(/confirmed$/).first().waitFor();
    await page.context().close();

    await open('police');
    const confirmed = page.getByTestId('confirmed-hits');
    await confirmed.locator(`tbody tr[data-hit="${opened.id}"]`).getByRole('button').click();
    await page.locator('[data-testid=hit-map][data-ready=true]').waitFor();
    await page.locator('.pos-label', { hasText: /^A1$/ }).first().waitFor();
    // The same hit, without the person's home: police are not given their orders.
    assert.equal(await page.getByTestId('hit-places').count(), 0);
    assert.equal(await page.getByText(/^Curfew address: /).count(), 0);
    await page.getByTestId('hit-map').scrollIntoViewIfNeeded();
    await screenshot(page, 'police-hit');
    // The confirmed hit's evidence pack downloads as a PDF, the button busy meanwhile.
    const [pack] = await Promise.all([page.waitForEvent('download'), page.getByTestId('pack-pdf').click()]);
    assert.match(pack.suggestedFilename(), /^H[0-9a-f]+-pack\.pdf$/);
    const bytes = await readFile(await pack.path());
    assert.equal(bytes.subarray(0, 5).toString(), '%PDF-');
    await page.getByText('Evidence pack (PDF) saved.').waitFor();
  });

  it('a confirmed hit withdrawn by a backdated end is struck through with why; no review', async (t) => {
    const confirmed = JSON.parse((await server.api('hub', '/v1/hits?state=confirmed')).body || '[]');
    if (!Array.isArray(confirmed) || !confirmed.length) return t.skip('no confirmed hit (the crime hits API is not here)');
    const hit = confirmed[0];
    // The tag came off a second after it was fitted (recorded late): the hit's positions are
    // no longer the activation's.
    const person = JSON.parse((await server.api('hub', `/v1/people/${encodeURIComponent(hit.person)}`)).body);
    const activation = person.activations.find((a) => a.id === hit.activation);
    const to = new Date(Date.parse(activation.from) + 1000);
    assert.ok(to < new Date(hit.crime_from));
    const ended = await server.api('hub', `/v1/activations/${encodeURIComponent(hit.activation)}/end`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ to: to.toISOString() }),
    });
    assert.equal(ended.status, 200, ended.body);
    let now = hit;
    for (let i = 0; i < 100 && !now.withdrawn; i++) {
      await new Promise((r) => setTimeout(r, 100));
      now = JSON.parse((await server.api('hub', `/v1/hits/${hit.id}`)).body);
    }
    assert.ok(now.withdrawn, 'the hit was not withdrawn');

    await open('hub');
    const row = page.getByTestId('withdrawn-hits').locator(`tr[data-hit="${hit.id}"]`);
    await row.waitFor();
    assert.match(await row.getAttribute('class'), /withdrawn/);
    assert.match(await row.getByTestId('hit-withdrawn').textContent(), /withdrawn: activation '.*' ended/);
    await row.getByRole('button').click();
    await page.getByTestId('hit-withdrawn-reason').waitFor();
    assert.ok(await page.getByRole('button', { name: 'Confirm hit' }).isDisabled());
    assert.ok(await page.getByRole('button', { name: 'Reject hit' }).isDisabled());
    await screenshot(page, 'hub-hit-withdrawn');
    await page.context().close();

    await open('police');
    const theirs = page.getByTestId('confirmed-hits').locator(`tr[data-hit="${hit.id}"]`);
    await theirs.waitFor();
    assert.match(await theirs.getAttribute('class'), /withdrawn/);
    await screenshot(page, 'police-hit-withdrawn');
  });
});
