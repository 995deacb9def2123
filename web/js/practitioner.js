// The practitioner's page: the caseload, then for one person and a bounded period the trail map
// (gaps, numbered positions, confidence circles, stays, curfew addresses and zones), playback with
// a time slider, the compliance summary, exports, and for alcohol orders the sober-day calendar
// and the TAC chart.

import { get, request, qs } from './api.js';
import { dayTimeline } from './timeline.js';
import { documentButtons } from './documents.js';
import {
  h, fill, table, message, field, fmtTime, fmtDuration, words, toLocalInput, ukDate, download, timeOf,
} from './ui.js';

// Leaflet and the map code load when the first map is drawn, not with the page (the first load
// is the queue or the caseload; Leaflet is most of the console's bytes).
const maps = () => import('./map.js');

const MAX_DAYS = 31;
const DAY = 86400_000;
const FORMATS = ['geojson', 'gpx', 'kml', 'csv'];

export async function practitionerPage(root) {
  const list = h('section', { class: 'card caseload' });
  const view = h('div', { class: 'person-view' });
  fill(root, h('div', { class: 'practitioner' }, list, view));
  let stop = () => {};

  const byId = h('input', { name: 'person-id', size: 8, required: true });
  const openForm = h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); open(byId.value.trim()); } },
    field('Person id', byId), h('button', { type: 'submit' }, 'Open'));

  async function open(id) {
    stop();
    location.hash = `person=${encodeURIComponent(id)}`;
    stop = await personView(view, id);
  }

  try {
    const people = await get('/v1/people');
    const status = new Map(people.map((p) => [p.id, {
      kinds: h('td', {}, '…'), open: h('td', { class: 'num' }, '…'), last: h('td', {}, '…'),
      contact: h('td', { 'data-testid': 'last-contact' }, '…') }]));
    fill(list, h('h2', {}, `Caseload (${people.length})`),
      people.length ? table(['id', 'name', 'monitoring', 'open alerts', 'latest data', 'last contact'], people.map((p) => h('tr', {},
        h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => open(p.id) }, p.id)),
        h('td', {}, p.name ?? ''), status.get(p.id).kinds, status.get(p.id).open, status.get(p.id).last,
        status.get(p.id).contact)),
      { 'data-testid': 'caseload' })
        : message('Nobody is on your caseload.'),
      openForm);
    caseloadStatus(people, status);
  } catch (e) {
    fill(list, h('h2', {}, 'Caseload'), message(e.message, 'error'), openForm);
  }
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('person');
  if (fromHash) open(fromHash);
  else fill(view, message('Choose a person from your caseload.'));
  return () => stop();
}

/** What a person's orders monitor: GPS (positions: trail or zones), RF curfew (a curfew without
 * positions), alcohol. */
export function monitoringKinds(orders) {
  const kinds = new Set(orders.flatMap((o) => o.conditions.map((c) => c.type)));
  const out = [];
  const gps = kinds.has('trail') || kinds.has('exclusion_zone') || kinds.has('inclusion_zone');
  if (gps) out.push('GPS');
  if (kinds.has('curfew')) out.push(gps ? 'curfew' : 'RF curfew');
  if (kinds.has('alcohol')) out.push('alcohol');
  return out.join(', ') || 'none';
}

/** Fills the caseload's status cells: open alerts (one read of the caseload's alerts), then
 * each person's kind of monitoring, latest data (positions, TAC) and last contact (their newest
 * reading of any kind) from their record. */
async function caseloadStatus(people, status) {
  get(`/v1/alerts${qs({ limit: 5000 })}`).then((alerts) => {
    const open = new Map();
    for (const a of alerts) {
      if (a.review?.state !== 'resolved' && !a.withdrawn) open.set(a.person, (open.get(a.person) ?? 0) + 1);
    }
    for (const [id, cells] of status) cells.open.textContent = String(open.get(id) ?? 0);
  }).catch(() => { for (const cells of status.values()) cells.open.textContent = '?'; });
  for (const p of people.slice(0, 200)) {
    const cells = status.get(p.id);
    try {
      const who = await get(`/v1/people/${encodeURIComponent(p.id)}`);
      cells.kinds.textContent = monitoringKinds(who.orders);
      cells.last.textContent = who.data_until ? fmtTime(who.data_until) : 'none yet';
      fill(cells.contact, timeOf(who.last_contact));
    } catch {
      cells.kinds.textContent = '?';
      cells.last.textContent = '?';
      cells.contact.textContent = '?';
    }
  }
}

/** One person: details, period, and everything for the period. Returns a stop function. */
async function personView(view, id) {
  fill(view, message(`Loading ${id}…`));
  let who;
  let alerts;
  try {
    [who, alerts] = await Promise.all([
      get(`/v1/people/${encodeURIComponent(id)}`),
      get(`/v1/alerts${qs({ person: id, limit: 5000 })}`),
    ]);
  } catch (e) {
    fill(view, h('section', { class: 'card' }, h('h2', {}, `Person ${id}`), message(e.message, 'error')));
    return () => {};
  }
  const p = who.person;
  // Open on the person's latest data (their latest position or TAC reading, else their latest
  // alert), not on the wall clock's last day: recorded data may be older than today.
  const latest = who.data_until ? Date.parse(who.data_until)
    : alerts.reduce((m, a) => Math.max(m, Date.parse(a.end ?? a.start)), 0);
  const end = latest ? Math.ceil((latest + 60_000) / 60_000) * 60_000 : Date.now();
  const span = alcoholOnly(who) ? 7 * DAY : DAY;
  const from = h('input', { type: 'datetime-local', name: 'from', required: true, value: toLocalInput(end - span) });
  const to = h('input', { type: 'datetime-local', name: 'to', required: true, value: toLocalInput(end) });
  const formMsg = h('div');
  const body = h('div', { class: 'period-body' });
  let stopPeriod = () => {};
  const show = async (ev) => {
    ev?.preventDefault();
    const [a, b] = [new Date(from.value).getTime(), new Date(to.value).getTime()];
    fill(formMsg);
    if (!(b > a)) return formMsg.append(message('The end of the period must be after its start.', 'error'));
    if (b - a > MAX_DAYS * DAY) return formMsg.append(message(`A period may cover at most ${MAX_DAYS} days.`, 'error'));
    stopPeriod();
    stopPeriod = await periodView(body, who, alerts, a, b);
  };
  const conditions = [...new Set(who.orders.flatMap((o) => o.conditions.map((c) => words(c.type))))];
  fill(view,
    h('section', { class: 'card' },
      h('h2', { 'data-testid': 'person-title' }, `${p.name ?? p.id} (${p.id})`),
      h('p', {}, [p.nomis_id && `NOMIS ${p.nomis_id}`, `orders: ${who.orders.map((o) => o.id).join(', ') || 'none'}`,
        `conditions: ${conditions.join(', ') || 'none'}`, `tags: ${who.activations.map((a) => a.tag).join(', ')}`].filter(Boolean).join(' · ')),
      h('form', { class: 'inline period', onsubmit: show },
        field('From', from), field('To', to),
        h('button', { type: 'submit' }, 'Show period'), h('small', {}, `your browser's local time; at most ${MAX_DAYS} days`), formMsg),
      historyView(id)),
    body);
  await show();
  return () => stopPeriod();
}

/** What one change did, in words. */
function describeChange(c) {
  const ch = c.change ?? {};
  switch (ch.op) {
    case 'put_person': return 'person details recorded';
    case 'put_activation': {
      const a = ch.activation ?? {};
      return `tag ${a.tag} fitted (activation ${a.id}) from ${fmtTime(a.from)}${a.to ? ` to ${fmtTime(a.to)}` : ''}`;
    }
    case 'end_activation': return `activation ${ch.activation} ended at ${fmtTime(ch.to)}`;
    case 'put_order': {
      const o = ch.order ?? {};
      const kinds = [...new Set((o.conditions ?? []).map((x) => words(x.type)))].join(', ');
      return `order ${o.id} ${c.effective ? 'varied' : 'recorded'}: ${kinds || 'no conditions'} (${o.from ?? ''}${o.to ? ` to ${o.to}` : ''})`;
    }
    case 'purge': return 'records purged by retention';
    default: return c.subject ?? words(ch.op);
  }
}

/** The person's order history (every change to their records: who, when, effective from),
 * loaded when opened: reading it is audited like reading the person. */
function historyView(id) {
  const body = h('div', {}, message('Loading…'));
  let loaded = false;
  const details = h('details', { class: 'history', 'data-testid': 'order-history' },
    h('summary', {}, 'Order history'), body);
  details.addEventListener('toggle', async () => {
    if (!details.open || loaded) return;
    loaded = true;
    try {
      const { changes } = await get(`/v1/people/${encodeURIComponent(id)}/history`);
      fill(body, changes.length
        ? table(['recorded', 'by', 'change', 'effective from', ''], changes.slice().reverse().map((c) =>
          h('tr', { class: c.refused ? 'refused' : '' },
            h('td', {}, fmtTime(c.recorded)), h('td', {}, c.actor ?? ''),
            h('td', {}, describeChange(c)), h('td', {}, c.effective ? fmtTime(c.effective) : 'from the start'),
            h('td', {}, c.refused ? `refused: ${c.refused}` : ''))), { 'data-testid': 'order-history-table' })
        : message('No changes recorded.'));
    } catch (e) {
      loaded = false;
      fill(body, message(e.message, 'error'));
    }
  });
  return details;
}

/** Whether every condition of the person's orders is alcohol monitoring (no positions to map). */
function alcoholOnly(who) {
  const kinds = who.orders.flatMap((o) => o.conditions.map((c) => c.type));
  return kinds.length > 0 && kinds.every((k) => k === 'alcohol');
}

async function periodView(body, who, allAlerts, fromMs, toMs) {
  const id = who.person.id;
  if (alcoholOnly(who)) {
    // Alcohol only: the calendar and chart first, no map of positions there are none of.
    const alcohol = h('div');
    fill(body, alcohol, h('section', { class: 'card' }, complianceView(allAlerts, fromMs, toMs)));
    await alcoholView(alcohol, who, fromMs, toMs, { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() });
    return () => {};
  }
  const period = { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() };
  const mapEl = h('div', { class: 'map trail-map', 'data-testid': 'trail-map' });
  const summary = h('p', { class: 'hint', 'data-testid': 'trail-summary' }, 'Loading the trail…');
  const player = h('div', { class: 'player' });
  const stays = h('section', { class: 'card' }, h('h3', {}, 'Places visited'));
  const timeline = h('section', { class: 'card' }, h('h3', {}, 'Day by day'));
  const compliance = h('section', { class: 'card' }, complianceView(allAlerts, fromMs, toMs));
  const alcohol = h('div');
  const exportMsg = h('span', { role: 'status' });
  const exports = h('div', { class: 'exports' }, h('span', {}, 'Export the trail: '),
    FORMATS.map((f) => h('button', { type: 'button', class: 'secondary', onclick: (e) => exportTrail(id, period, f, e.currentTarget, exportMsg) }, f.toUpperCase())),
    exportMsg);
  fill(body,
    h('section', { class: 'card' }, h('h3', {}, 'Trail'), mapEl, summary, player, exports),
    timeline,
    h('div', { class: 'two' }, stays, compliance),
    alcohol);

  const kit = await maps();
  const { createMap, drawPlaces, drawTrail, fit, addLabels } = kit;
  const { map, overlay } = await createMap(mapEl);
  drawPlaces(overlay, who.orders);
  let stopPlayer = () => {};
  try {
    const [res, st] = await Promise.all([
      request(`/v1/people/${encodeURIComponent(id)}/trail${qs(period)}`, { as: 'response' }),
      get(`/v1/people/${encodeURIComponent(id)}/stays${qs(period)}`),
    ]);
    const positions = drawTrail(overlay, await res.json(), { map });
    const total = Number(res.headers.get('x-total-positions') ?? positions.length);
    drawStays(kit.L, overlay, st.stays);
    fit(map, overlay, positions);
    addLabels(map, overlay, positions.map((q) => ({ ...q, label: q.props.label })));
    const gaps = positions.filter((x) => x.props.gap_before).length;
    const partial = total > positions.length ? ` (the first ${positions.length} of ${total}: choose a shorter period to see the rest)` : '';
    const thinned = positions.dotsEvery > 1
      ? ` The line joins every position; a dot marks every ${positions.dotsEvery}th and each gap's first, and precision circles are left out: choose a shorter period to see them all.`
      : ' Circles show each fix\'s precision.';
    summary.textContent = positions.length
      ? `${positions.length} positions${partial}, ${gaps} gap${gaps === 1 ? '' : 's'} (red dashes; labels restart A1, B1… after each). Hover a dot for time, precision, speed and heading.${thinned}`
      : 'No positions in this period (an RF or alcohol tag sends none). Curfew addresses and zones are shown.';
    stays.append(staysTable(st.stays));
    timeline.append(dayTimeline(positions, who.orders, fromMs, toMs) || message('No days in this period.'));
    stopPlayer = playback(kit, player, map, positions);
    mapEl.dataset.ready = 'true';
  } catch (e) {
    summary.replaceWith(message(e.message, 'error'));
  }
  alcoholView(alcohol, who, fromMs, toMs, period);
  return () => stopPlayer();
}

function drawStays(L, group, stays) {
  for (const s of stays || []) {
    L.circleMarker([s.lat, s.lon], { radius: 10, color: '#117a65', weight: 2, fillColor: '#48c9b0', fillOpacity: 0.5 })
      .bindTooltip(`Stay ${fmtTime(s.arrival)} – ${fmtTime(s.departure)} (${fmtDuration(s.duration_ms)})${s.place ? ' at ' + s.place : ''}`)
      .addTo(group);
  }
}

function staysTable(stays) {
  if (!stays?.length) return message('No stays of 10 minutes or more in this period.');
  return table(['arrival', 'departure', 'time spent', 'place', 'fixes'],
    stays.map((s) => h('tr', {}, h('td', {}, fmtTime(s.arrival)), h('td', {}, fmtTime(s.departure)),
      h('td', {}, fmtDuration(s.duration_ms)), h('td', {}, s.place ?? `${s.lat.toFixed(4)}, ${s.lon.toFixed(4)}`),
      h('td', { class: 'num' }, s.fixes))), { class: 'stays' });
}

/** Alerts that overlap the period, by type, with their outcomes. */
function complianceView(alerts, fromMs, toMs) {
  const inPeriod = alerts.filter((a) => Date.parse(a.start) <= toMs && Date.parse(a.end ?? a.start) >= fromMs);
  const byType = new Map();
  for (const a of inPeriod) {
    const row = byType.get(a.type) ?? { n: 0, open: 0, outcomes: {} };
    row.n++;
    if (a.review?.state !== 'resolved') row.open++;
    if (a.review?.outcome) row.outcomes[a.review.outcome] = (row.outcomes[a.review.outcome] ?? 0) + 1;
    byType.set(a.type, row);
  }
  return h('div', { 'data-testid': 'compliance' }, h('h3', {}, 'Compliance in the period'),
    inPeriod.length ? table(['alert type', 'alerts', 'open', 'outcomes'],
      [...byType].map(([t, r]) => h('tr', {}, h('td', {}, words(t)), h('td', { class: 'num' }, r.n), h('td', { class: 'num' }, r.open),
        h('td', {}, Object.entries(r.outcomes).map(([o, n]) => `${words(o)} ${n}`).join(', ') || '—'))))
      : message('No alerts in this period.'));
}

/** The slider, play / pause, speed; moves a head marker and draws the track up to it. */
function playback({ L, headMarker }, el, map, positions) {
  if (!positions.length) {
    fill(el);
    return () => {};
  }
  const slider = h('input', { type: 'range', min: 0, max: positions.length - 1, value: 0, step: 1, name: 'playback', 'aria-label': 'Playback position' });
  const now = h('output', { 'data-testid': 'playback-time' });
  const play = h('button', { type: 'button' }, 'Play');
  const speed = h('select', { name: 'speed' }, [['250', '4 positions/s'], ['100', '10 positions/s'], ['25', '40 positions/s']].map(([v, t]) => h('option', { value: v }, t)));
  speed.value = positions.length > 400 ? '25' : '100';
  const head = headMarker().addTo(map);
  const played = L.polyline([], { color: '#f39c12', weight: 5, opacity: 0.8, interactive: false }).addTo(map);
  let timer = null;
  const go = (i) => {
    const p = positions[i];
    slider.value = i;
    head.setLatLng([p.lat, p.lon]);
    played.setLatLngs(positions.slice(0, i + 1).map((q) => [q.lat, q.lon]));
    now.value = `${p.props.label} · ${fmtTime(p.t)} · precision ${Math.round(p.props.precision_m)} m`;
    if (!map.getBounds().contains(head.getLatLng())) map.panTo(head.getLatLng());
  };
  const pause = () => { clearInterval(timer); timer = null; play.textContent = 'Play'; };
  const start = () => {
    if (Number(slider.value) >= positions.length - 1) go(0);
    play.textContent = 'Pause';
    timer = setInterval(() => {
      const i = Number(slider.value) + 1;
      if (i >= positions.length) return pause();
      go(i);
    }, Number(speed.value));
  };
  play.addEventListener('click', () => (timer ? pause() : start()));
  speed.addEventListener('change', () => { if (timer) { pause(); start(); } });
  slider.addEventListener('input', () => go(Number(slider.value)));
  fill(el, h('span', { class: 'label' }, 'Playback'), play, field('Position', slider), field('Speed', speed), now);
  go(0);
  return () => { pause(); head.remove(); played.remove(); };
}

/** One export: the button is busy (disabled, saying so) until the file is saved, so a double
 * click downloads once. */
async function exportTrail(id, period, format, button, status) {
  if (button.disabled) return;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  status.textContent = `Preparing ${format.toUpperCase()}…`;
  try {
    const blob = await request(`/v1/people/${encodeURIComponent(id)}/trail${qs({ ...period, format })}`, { as: 'blob' });
    download(blob, `${id}-trail-${period.from.slice(0, 10)}.${format}`);
    status.textContent = `${format.toUpperCase()} saved.`;
  } catch (e) {
    status.textContent = `${format.toUpperCase()} not saved: ${e.message}`;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/** Sober-day calendar and TAC chart for each alcohol order and its activations. */
async function alcoholView(el, who, fromMs, toMs, period) {
  const orders = who.orders.filter((o) => o.conditions.some((c) => c.type === 'alcohol'));
  if (!orders.length) return;
  const loading = message('Loading the sober days and the TAC chart…');
  const section = h('section', { class: 'card alcohol', 'data-testid': 'alcohol', 'aria-busy': 'true' },
    h('h3', {}, 'Alcohol monitoring'), loading);
  fill(el, section);
  const dates = { from: ukDate(fromMs), to: ukDate(toMs) };
  for (const o of orders) {
    try {
      const r = await get(`/v1/orders/${encodeURIComponent(o.id)}/sober-days${qs(dates)}`);
      const rate = r.rate?.rate == null ? 'no worn days' : `${Math.round(r.rate.rate * 100)}% sober (${r.rate.sober} of ${r.rate.worn} worn days)`;
      const id = encodeURIComponent(who.person.id);
      const query = qs({ order: o.id, ...dates });
      const stem = `${who.person.id}-${o.id}-sober-days-${dates.from}`;
      loading.before(h('h4', {}, `Order ${o.id}: ${rate}`), calendar(r.days, dates, o, fittedDate(who)),
        documentButtons([
          ['Sober-day report (PDF)', `/v1/people/${id}/sober-day-report.pdf${query}`, `${stem}.pdf`, 'sober-report-pdf'],
          ['Report JSON', `/v1/people/${id}/sober-day-report.json${query}`, `${stem}.json`, 'sober-report-json'],
          ['Manifest', `/v1/people/${id}/sober-day-report-manifest.json${query}`, `${stem}-manifest.json`, 'sober-report-manifest'],
        ], 'sober-report'));
    } catch (e) {
      loading.before(message(e.message, 'error'));
    }
  }
  for (const a of who.activations) {
    try {
      const svg = await request(`/v1/activations/${encodeURIComponent(a.id)}/alcohol-chart${qs(period)}`, { as: 'text' });
      section.append(h('h4', {}, `TAC chart · tag ${a.tag} (UK time)`), ...tacChart(svg, a.tag));
    } catch (e) {
      section.append(message(e.message, 'error'));
    }
  }
  loading.remove();
  section.removeAttribute('aria-busy');
}

/**
 * The server's TAC chart inline (not an image), so that its readings can be read: hovering one
 * shows its time and values (its `<title>`) in the readout under the chart, and the chart is a
 * slider over the readings for the keyboard (← →, Home, End). Returns [chart, readout].
 */
function tacChart(svgText, tag) {
  const parsed = new DOMParser().parseFromString(svgText, 'image/svg+xml').documentElement;
  const chart = document.importNode(parsed, true);
  chart.classList.add('chart');
  chart.dataset.testid = 'tac-chart';
  const readings = [...chart.querySelectorAll('rect.reading')];
  const label = (r) => r.querySelector('title')?.textContent ?? '';
  const readout = h('p', { class: 'readout', 'data-testid': 'tac-readout' }, readings.length
    ? 'Hover a reading, or focus the chart and use ← → (Home, End), for its time and TAC, IR and temperature.'
    : 'No TAC readings in the period.');
  if (!readings.length) {
    chart.setAttribute('role', 'img');
    chart.setAttribute('aria-label', `TAC chart of tag ${tag}: no readings in the period`);
    return [chart, readout];
  }
  let at = -1;
  const show = (i) => {
    readings[at]?.classList.remove('current');
    at = i;
    readings[at].classList.add('current');
    readout.textContent = label(readings[at]);
    chart.setAttribute('aria-valuenow', String(at + 1));
    chart.setAttribute('aria-valuetext', label(readings[at]));
  };
  for (const [name, value] of Object.entries({ tabindex: '0', role: 'slider', 'aria-valuemin': '1',
    'aria-valuemax': String(readings.length), 'aria-valuenow': '1', 'aria-valuetext': label(readings[0]),
    'aria-label': `TAC, IR and temperature readings of tag ${tag} (${readings.length}), with events and day statuses` })) {
    chart.setAttribute(name, value);
  }
  chart.addEventListener('mouseover', (e) => {
    const i = readings.indexOf(e.target.closest?.('rect.reading'));
    if (i >= 0) show(i);
  });
  chart.addEventListener('keydown', (e) => {
    const to = { ArrowRight: at + 1, ArrowUp: at + 1, ArrowLeft: at - 1, ArrowDown: at - 1, Home: 0, End: readings.length - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    show(Math.min(Math.max(to, 0), readings.length - 1));
  });
  return [chart, readout];
}

/** Every UK date from `from` to `to` (YYYY-MM-DD, both included). */
function datesBetween(from, to) {
  const out = [];
  for (let d = new Date(`${from}T12:00:00Z`); out.length < 400; d = new Date(d.getTime() + DAY)) {
    const date = d.toISOString().slice(0, 10);
    if (date > to) break;
    out.push(date);
  }
  return out;
}

/** The UK date the person's first tag was fitted (their earliest activation), if any. */
function fittedDate(who) {
  const starts = (who.activations || []).map((a) => Date.parse(a.from)).filter((t) => !Number.isNaN(t));
  return starts.length ? ukDate(Math.min(...starts)) : null;
}

/** A cell for every day of the period the order covers once a tag was fitted: its
 * classification, or "awaiting data" while the day is not decided yet. */
function calendar(records, dates, order, fitted) {
  // A day may be re-issued (late data): the last record of a date is the one that stands.
  const decided = new Map((records || []).map((d) => [d.date, d]));
  const first = [dates.from, order.from, fitted].filter(Boolean).sort().pop();
  const last = [dates.to, order.to].filter(Boolean).sort()[0];
  const days = datesBetween(first, last);
  if (!days.length) return message('The order does not cover this period.');
  return h('ol', { class: 'calendar', 'data-testid': 'calendar' }, days.map((date) => {
    const d = decided.get(date);
    const text = d ? `${date}: ${words(d.status)}${d.reasons?.length ? ' (' + d.reasons.map(words).join(', ') + ')' : ''}`
      : `${date}: awaiting data (not decided yet)`;
    return h('li', { class: `day ${d ? d.status : 'awaiting'}`, title: text, 'aria-label': text },
      h('span', { class: 'date' }, date.slice(5)), h('span', { class: 'status' }, d ? words(d.status) : 'awaiting data'));
  }));
}
