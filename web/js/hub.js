// The hub's page: the live alert queue (Server-Sent Events) in priority order (docs/console.md),
// sortable and filtered, new urgent alerts signalled (tone, tab title, announcement), bulk and
// single acknowledge / assign / resolve with only the actions the state allows, keyboard
// shortcuts, the person in context and a map of their positions around the selected alert with
// their curfew addresses and zones, and the crime hits awaiting review, refreshed.

import { get, post, follow, qs } from './api.js';
import { h, fill, table, message, field, toast, fmtTime, words } from './ui.js';
import { priorityOf, byPriority, PRIORITY_NAMES, COLUMN_ORDER, actionsFor, age } from './priority.js';
import { personPanel } from './person.js';
import { loadHits, hitRow, hitDetail, reviewForm, HIT_COLUMNS, NO_HITS_API } from './hits.js';
import { documentButtons } from './documents.js';

// Leaflet and the map code load when the first map is drawn, not with the page (the first load
// is the queue or the caseload; Leaflet is most of the console's bytes).
const maps = () => import('./map.js');

const STATES = ['new', 'acknowledged', 'assigned', 'resolved'];
const OUTCOMES = ['breach_confirmed', 'reasonable_excuse', 'authorised_absence', 'false_alarm', 'duplicate'];
const MARGIN_MS = 2 * 3600_000;
/** The alerts a breach report is made for (docs/documents.md). */
const BREACH_TYPES = new Set(['curfew_violation', 'exclusion_zone_entry', 'inclusion_zone_exit']);
const SHOW_ROWS = 300;

export async function hubPage(root, me = {}) {
  const alerts = new Map();
  const names = new Map();
  const controller = new AbortController();
  let selected = null;
  let sortKey = 'priority';
  let sortDesc = false;
  const checked = new Set();
  // Alerts raised since the page caught up with the stream, not yet acted on: highlighted, and
  // the urgent ones counted in the tab title.
  const fresh = new Set();
  const signalled = new Set();
  let caughtUp = false;

  const type = h('select', { name: 'type' }, h('option', { value: '' }, 'all types'));
  const state = h('select', { name: 'state' },
    h('option', { value: 'open' }, 'open (not resolved)'), h('option', { value: '' }, 'all states'),
    STATES.map((s) => h('option', { value: s }, s)));
  const person = h('input', { name: 'person', size: 14, type: 'search', placeholder: 'id or name',
    title: 'Any part of the person id or name, any case' });
  const live = h('span', { class: 'live', 'data-testid': 'live' }, 'connecting…');
  const banner = h('div', { class: 'banner', role: 'alert', 'data-testid': 'stream-down', hidden: true });
  const mute = h('button', { type: 'button', class: 'secondary small', 'aria-pressed': String(muted()),
    onclick: () => { setMuted(!muted()); mute.setAttribute('aria-pressed', String(muted())); mute.textContent = muteText(); } },
  muteText());
  const count = h('span', { class: 'count', 'data-testid': 'queue-count' });
  const rows = h('tbody');
  const head = h('tr');
  const all = h('input', { type: 'checkbox', 'aria-label': 'Select every alert shown', onchange: () => {
    for (const a of shownNow) if (all.checked) checked.add(a.id); else checked.delete(a.id);
    render();
  } });
  const bulkAssignee = h('input', { name: 'bulk-assignee', size: 10 });
  const bulk = h('form', { class: 'bulk', 'data-testid': 'bulk', hidden: true, onsubmit: (e) => e.preventDefault() },
    h('span', { class: 'bulk-count' }),
    h('button', { type: 'button', onclick: () => bulkAct('acknowledge', () => ({ notes: null })) }, 'Acknowledge selected'),
    field('Assign selected to', bulkAssignee),
    h('button', { type: 'button', class: 'secondary', onclick: () => {
      if (!bulkAssignee.value.trim()) { bulkAssignee.reportValidity(); return; }
      bulkAct('assign', () => ({ assignee: bulkAssignee.value.trim() }));
    } }, 'Assign selected'),
    me.user ? h('button', { type: 'button', class: 'secondary', onclick: () => bulkAct('assign', () => ({ assignee: me.user })) },
      'Assign selected to me') : '');
  bulkAssignee.required = true;
  const detail = h('section', { class: 'card detail' }, message('Select an alert to review it.'));
  const hitsBox = h('section', { class: 'card hits', id: 'hits' });
  const hitsLink = h('a', { href: '#hits', class: 'hits-link', hidden: true });
  // New alerts are announced here (the detail is not a live region: it would be re-read on
  // every change).
  const announce = h('p', { class: 'visually-hidden', 'aria-live': 'assertive', 'data-testid': 'announce' });

  fill(root, banner, announce, h('div', { class: 'hub' },
    h('section', { class: 'card queue' },
      h('h2', {}, 'Alert queue ', live, hitsLink),
      h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() },
        field('Type', type), field('State', state), field('Person', person), mute, count),
      bulk,
      h('p', { class: 'hint keys' }, 'Keys: j / k next and previous alert, a acknowledge, m assign to me, x select, / search.'),
      h('div', { class: 'scroll' }, h('table', { class: 'alerts', 'data-testid': 'alerts' },
        h('thead', {}, head), rows))),
    detail),
  hitsBox);
  for (const el of [type, state]) el.addEventListener('change', render);
  person.addEventListener('input', render);

  const COLUMNS = ['priority', 'age', 'start', 'type', 'person', 'state', 'assignee'];
  function renderHead() {
    fill(head, h('th', { scope: 'col' }, all), COLUMNS.map((c) => h('th', {
      scope: 'col', 'aria-sort': c === sortKey ? (sortDesc ? 'descending' : 'ascending') : 'none',
    }, h('button', { type: 'button', class: 'sort', title: `Sort by ${c}`, onclick: () => {
      sortDesc = c === sortKey ? !sortDesc : false;
      sortKey = c;
      render();
    } }, c, c === sortKey ? (sortDesc ? ' ▼' : ' ▲') : ''))));
  }

  let pending = false;
  function schedule() {
    if (!pending) {
      pending = true;
      requestAnimationFrame(() => { pending = false; render(); });
    }
  }

  function matches(a) {
    const st = a.review?.state;
    if (type.value && a.type !== type.value) return false;
    if (state.value === 'open' && st === 'resolved') return false;
    if (state.value && state.value !== 'open' && (st ?? 'new') !== state.value) return false;
    const q = person.value.trim().toLowerCase();
    if (q && !a.person.toLowerCase().includes(q) && !(names.get(a.person) ?? '').toLowerCase().includes(q)) return false;
    return true;
  }

  let shownNow = [];
  function render() {
    const types = [...new Set([...alerts.values()].map((a) => a.type))].sort();
    if (types.length !== type.options.length - 1) {
      const keep = type.value;
      fill(type, h('option', { value: '' }, 'all types'), types.map((t) => h('option', { value: t }, words(t))));
      type.value = keep;
    }
    const order = COLUMN_ORDER[sortKey];
    shownNow = [...alerts.values()].filter(matches).sort((a, b) => (sortDesc ? -order(a, b) : order(a, b)));
    count.textContent = `${shownNow.length} of ${alerts.size} alerts`;
    renderHead();
    const now = Date.now();
    fill(rows, shownNow.slice(0, SHOW_ROWS).map((a) => {
      const p = priorityOf(a);
      const classes = [a.id === selected && 'selected', a.review?.state, a.withdrawn && 'withdrawn',
        fresh.has(a.id) && 'fresh', `p${p}`].filter(Boolean).join(' ');
      return h('tr', { class: classes, dataset: { alert: a.id, type: a.type, priority: String(p) } },
        h('td', {}, h('input', { type: 'checkbox', checked: checked.has(a.id), 'aria-label': `Select alert ${a.id}`,
          onchange: (e) => { if (e.target.checked) checked.add(a.id); else checked.delete(a.id); renderBulk(); } })),
        h('td', {}, h('span', { class: `prio p${p}` }, PRIORITY_NAMES[p])),
        h('td', { class: 'num' }, age(a.start, now)),
        h('td', {}, fmtTime(a.start)),
        h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => select(a.id) },
          words(a.type), a.code ? ` ${a.code}` : ''), a.late ? h('span', { class: 'badge late', title: 'raised after the event, from data that arrived late' }, 'late') : ''),
        h('td', {}, a.person, names.get(a.person) ? h('small', {}, ` ${names.get(a.person)}`) : ''),
        h('td', {}, `${a.review?.state ?? 'new'}${a.withdrawn ? ' · withdrawn' : ''}`),
        h('td', {}, a.review?.assignee ?? ''));
    }));
    all.checked = shownNow.length > 0 && shownNow.every((a) => checked.has(a.id));
    renderBulk();
    renderTitle();
  }

  function renderBulk() {
    for (const id of [...checked]) if (!alerts.has(id)) checked.delete(id);
    bulk.hidden = checked.size === 0;
    bulk.querySelector('.bulk-count').textContent = `${checked.size} selected`;
  }

  function renderTitle() {
    const urgent = [...fresh].filter((id) => {
      const a = alerts.get(id);
      return a && priorityOf(a) === 1 && (a.review?.state ?? 'new') === 'new';
    }).length;
    document.title = urgent ? `(${urgent}) urgent alert${urgent === 1 ? '' : 's'} · tagstream console` : 'tagstream console';
  }

  async function bulkAct(action, body) {
    const targets = [...checked].map((id) => alerts.get(id)).filter((a) => a && actionsFor(a).includes(action));
    const skipped = checked.size - targets.length;
    bulk.querySelectorAll('button').forEach((b) => { b.disabled = true; });
    const failed = [];
    for (const a of targets) {
      try {
        const r = await post(`/v1/alerts/${encodeURIComponent(a.id)}/${action}`, body(a));
        alerts.set(r.id, { ...alerts.get(r.id), ...r });
        fresh.delete(r.id);
      } catch (e) {
        failed.push(`${words(a.type)} of ${a.person}: ${e.message}`);
      }
    }
    bulk.querySelectorAll('button').forEach((b) => { b.disabled = false; });
    checked.clear();
    const done = targets.length - failed.length;
    toast(`${action === 'acknowledge' ? 'Acknowledged' : 'Assigned'} ${done} alert${done === 1 ? '' : 's'}`
      + `${skipped ? `; ${skipped} skipped (not open to that action)` : ''}${failed.length ? `; ${failed.length} failed` : ''}`);
    if (failed.length) bulk.after(message(`Not done: ${failed.join('; ')}`, 'error'));
    render();
    if (selected) select(selected);
  }

  async function select(id) {
    selected = id;
    fresh.delete(id);
    render();
    const a = alerts.get(id);
    const history = h('div');
    const mapEl = h('div', { class: 'map alert-map', 'data-testid': 'alert-map' });
    const mapNote = h('p', { class: 'hint' });
    const personBox = h('section', { class: 'person-panel', 'data-testid': 'person-panel' }, message('Loading the person…'));
    fill(detail,
      h('h2', {}, `${words(a.type)}${a.code ? ' ' + a.code : ''} · ${names.get(a.person) ?? a.person}`),
      h('dl', { class: 'facts wide' },
        h('dt', {}, 'Priority'), h('dd', {}, h('span', { class: `prio p${priorityOf(a)}` }, PRIORITY_NAMES[priorityOf(a)])),
        h('dt', {}, 'From'), h('dd', {}, fmtTime(a.start)),
        h('dt', {}, 'To'), h('dd', {}, a.end ? fmtTime(a.end) : 'open'),
        h('dt', {}, 'Activation'), h('dd', {}, `${a.activation}${a.late ? ' (raised late)' : ''}`),
        h('dt', {}, 'Rule'), h('dd', {}, `${a.rule}${a.confidence ? ', ' + a.confidence : ''}`),
        h('dt', {}, 'State'), h('dd', { 'data-testid': 'alert-state' }, reviewText(a.review)),
        h('dt', {}, 'Alert'), h('dd', {}, h('small', {}, a.id)),
        ...(a.withdrawn ? [h('dt', {}, 'Withdrawn'), h('dd', { 'data-testid': 'alert-withdrawn' },
          `${a.withdrawn.reason}${a.withdrawn.change == null ? '' : ` (change ${a.withdrawn.change})`}: no longer holds`)] : []),
        ...(a.amended_by != null ? [h('dt', {}, 'Amended'), h('dd', {},
          `raised or changed by change ${a.amended_by} to the orders`)] : [])),
      personBox,
      h('h3', {}, 'Review'),
      actionForms(a),
      breachButtons(a),
      mapEl, mapNote,
      history);
    get(`/v1/alerts/${encodeURIComponent(id)}`).then((r) => fill(history, historyTable(r.history)))
      .catch((e) => fill(history, message(e.message, 'error')));
    const who = get(`/v1/people/${encodeURIComponent(a.person)}`);
    who.then((record) => {
      if (record.person?.name) names.set(a.person, record.person.name);
      const others = [...alerts.values()].filter((o) => o.person === a.person && o.id !== a.id
        && o.review?.state !== 'resolved' && !o.withdrawn).sort(byPriority);
      fill(personBox, personPanel(record, others, (o) => select(o.id), Date.parse(a.start)));
    }).catch((e) => fill(personBox, message(e.message, 'error')));
    await alertMap(a, mapEl, mapNote, who);
  }

  /** A curfew or zone alert's breach report: the PDF, its JSON and its manifest. */
  function breachButtons(a) {
    if (!BREACH_TYPES.has(a.type)) return '';
    const id = encodeURIComponent(a.id);
    const stem = `${a.id.replaceAll(/[^A-Za-z0-9_-]/g, '_')}-breach-report`;
    return documentButtons([
      ['Breach report (PDF)', `/v1/alerts/${id}/breach-report.pdf`, `${stem}.pdf`, 'breach-pdf'],
      ['Report JSON', `/v1/alerts/${id}/breach-report.json`, `${stem}.json`, 'breach-json'],
      ['Manifest', `/v1/alerts/${id}/breach-report-manifest.json`, `${stem}-manifest.json`, 'breach-manifest'],
    ], 'breach-report');
  }

  /** After an action on `id`: the next alert in the queue's order that is still open. */
  function next(id) {
    const at = shownNow.findIndex((a) => a.id === id);
    const after = shownNow.slice(at + 1).concat(shownNow.slice(0, Math.max(at, 0)));
    return after.find((a) => a.id !== id && actionsFor(a).length)?.id;
  }

  function actionForms(a) {
    const allowed = actionsFor(a);
    if (!allowed.length) return message(a.review?.state === 'resolved' ? 'Resolved: no further action.' : 'No action.');
    const done = (label, form) => (body) => {
      alerts.set(body.id, { ...alerts.get(body.id), ...body });
      toast(`${label}: ${words(a.type)} of ${names.get(a.person) ?? a.person}`);
      const then = label === 'Resolved' ? next(body.id) : body.id;
      select(then ?? body.id);
      form?.querySelectorAll('button').forEach((b) => { b.disabled = false; });
    };
    const act = async (action, body, ok, form) => {
      form.querySelectorAll('button').forEach((b) => { b.disabled = true; });
      form.querySelector('.msg.error')?.remove();
      try {
        ok(await post(`/v1/alerts/${encodeURIComponent(a.id)}/${action}`, body));
      } catch (e) {
        form.querySelectorAll('button').forEach((b) => { b.disabled = false; });
        form.append(message(actionError(e), 'error'));
      }
    };
    const forms = [];
    if (allowed.includes('acknowledge')) {
      const ackNotes = h('input', { name: 'note' });
      const ack = h('form', { class: 'actions', onsubmit: (e) => { e.preventDefault(); act('acknowledge', { notes: ackNotes.value || null }, done('Acknowledged', ack), ack); } },
        field('Note', ackNotes), h('button', { type: 'submit', 'data-key': 'a' }, 'Acknowledge'));
      forms.push(ack);
    }
    if (allowed.includes('assign')) {
      const assignee = h('input', { name: 'assignee', required: true });
      const assign = h('form', { class: 'actions', onsubmit: (e) => { e.preventDefault(); act('assign', { assignee: assignee.value.trim() }, done('Assigned', assign), assign); } },
        field(a.review?.assignee ? 'Reassign to' : 'Assign to', assignee), h('button', { type: 'submit' }, 'Assign'),
        me.user && a.review?.assignee !== me.user ? h('button', { type: 'button', class: 'secondary', 'data-key': 'm',
          onclick: () => act('assign', { assignee: me.user }, done('Assigned', assign), assign) }, 'Assign to me') : '');
      forms.push(assign);
    }
    const outcome = h('select', { name: 'outcome', required: true }, h('option', { value: '' }, 'choose…'), OUTCOMES.map((o) => h('option', { value: o }, words(o))));
    const notes = h('textarea', { name: 'resolve-notes', rows: 2, cols: 30 });
    const resolve = h('form', { class: 'actions', onsubmit: (e) => { e.preventDefault(); act('resolve', { outcome: outcome.value, notes: notes.value || null }, done('Resolved', resolve), resolve); } },
      field('Outcome', outcome), field('Resolution notes', notes), h('button', { type: 'submit' }, 'Resolve'));
    forms.push(resolve);
    return h('div', { class: 'review-forms' }, forms);
  }

  // Keyboard shortcuts (not while typing in a field).
  const onKey = (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target.closest?.('input, textarea, select, [contenteditable]')) return;
    const at = shownNow.findIndex((a) => a.id === selected);
    if (e.key === 'j' || e.key === 'k') {
      const to = shownNow[Math.min(Math.max(at + (e.key === 'j' ? 1 : -1), 0), shownNow.length - 1)];
      if (to) select(to.id);
    } else if (e.key === 'a' || e.key === 'm') {
      detail.querySelector(`button[data-key="${e.key}"]`)?.click();
    } else if (e.key === 'x' && selected) {
      if (checked.has(selected)) checked.delete(selected); else checked.add(selected);
      render();
    } else if (e.key === '/') {
      person.focus();
    } else {
      return;
    }
    e.preventDefault();
  };
  document.addEventListener('keydown', onKey);

  // Every minute the ages move on.
  const ticker = setInterval(schedule, 30_000);

  // Names for the person search: the people the hub may see, a page at a time.
  (async () => {
    let after;
    for (let page = 0; page < 200 && !controller.signal.aborted; page++) {
      const batch = await get(`/v1/people${qs({ limit: 1000, after })}`).catch(() => null);
      if (!batch?.length) break;
      for (const p of batch) if (p.name) names.set(p.id, p.name);
      after = batch[batch.length - 1].id;
      schedule();
      if (batch.length < 1000) break;
    }
  })();

  async function alertMap(a, mapEl, note, person) {
    const { createMap, drawPlaces, drawTrail, fit, addLabels } = await maps();
    const { map, overlay } = await createMap(mapEl);
    const start = Date.parse(a.start);
    const end = a.end ? Date.parse(a.end) : start;
    const from = new Date(start - MARGIN_MS).toISOString();
    const to = new Date(Math.min(end + MARGIN_MS, start + 30 * 86400_000)).toISOString();
    try {
      const [who, trail] = await Promise.all([
        person,
        get(`/v1/activations/${encodeURIComponent(a.activation)}/trail${qs({ from, to })}`),
      ]);
      drawPlaces(overlay, who.orders);
      const positions = drawTrail(overlay, trail, { map });
      const n = positions.length;
      note.textContent = n
        ? `${n} positions from ${fmtTime(from)} to ${fmtTime(to)} (the alert ± 2 h); hover a dot for time, precision, speed and heading.`
        : `No positions from ${fmtTime(from)} to ${fmtTime(to)} (an RF or alcohol tag sends none); the person's curfew addresses and zones are shown.`;
      fit(map, overlay, positions);
      addLabels(map, overlay, positions.map((q) => ({ ...q, label: q.props.label })));
      mapEl.dataset.ready = 'true';
    } catch (e) {
      note.replaceWith(message(e.message, 'error'));
    }
  }

  // Hits: refreshed every HITS_EVERY_MS (and after a decision) without closing the one open;
  // sorted by certainty, then distance.
  const hitLists = h('div');
  const hitBox = h('div', { class: 'hit-box' });
  fill(hitsBox, hitLists, hitBox);
  let hitsShown = '';
  async function refreshHits() {
    const hits = await loadHits({ state: 'pending' }).catch((e) => e);
    if (hits instanceof Error) return fill(hitLists, h('h2', {}, 'Crime hits awaiting review'), message(hits.message, 'error'));
    if (hits === null) return fill(hitLists, h('h2', {}, 'Crime hits awaiting review'), message(NO_HITS_API));
    // Hits the hub had confirmed or rejected that no longer hold: kept, struck through, with why.
    const withdrawn = (await loadHits({ withdrawn: 'only' }).catch(() => []) || [])
      .filter((hit) => hit.review?.state !== 'pending');
    const key = JSON.stringify([hits.map((x) => [x.id, x.closest_m, x.certainty]), withdrawn.map((x) => x.id)]);
    if (key === hitsShown) return;
    hitsShown = key;
    hits.sort(byCertaintyThenDistance);
    hitsLink.textContent = hits.length ? `${hits.length} crime hit${hits.length === 1 ? '' : 's'} awaiting review` : '';
    hitsLink.hidden = !hits.length;
    const open = async (hit) => {
      const who = get(`/v1/people/${encodeURIComponent(hit.person)}`).catch((e) => e);
      await hitDetail(hitBox, hit, reviewForm(hit, () => { fill(hitBox); hitsShown = ''; refreshHits(); }),
        { orders: who.then((r) => (r instanceof Error ? null : r.orders)) });
      // The person in context, as of the crime's time (the hub may see them; police may not).
      const record = await who;
      const panel = h('section', { class: 'person-panel', 'data-testid': 'hit-person' },
        record instanceof Error ? message(record.message, 'error')
          : personPanel(record, [...alerts.values()].filter((o) => o.person === hit.person
            && o.review?.state !== 'resolved' && !o.withdrawn).sort(byPriority), (o) => select(o.id), Date.parse(hit.crime_from)));
      hitBox.querySelector('dl.facts')?.after(panel);
    };
    fill(hitLists, h('h2', { 'data-testid': 'hits-heading' }, `Crime hits awaiting review (${hits.length})`),
      hits.length ? table(HIT_COLUMNS, hits.map((hit) => hitRow(hit, open)), { class: 'hit-list', 'data-testid': 'pending-hits' })
        : message('No hits are waiting for review.'),
      withdrawn.length ? [h('h3', {}, `Reviewed hits since withdrawn (${withdrawn.length})`),
        table(HIT_COLUMNS, withdrawn.map((hit) => hitRow(hit, open)), { class: 'hit-list', 'data-testid': 'withdrawn-hits' })] : '');
  }
  const hitsTimer = setInterval(() => { if (!document.hidden) refreshHits(); }, HITS_EVERY_MS);

  let seq = 0;
  /** One alert as it now stands (from the snapshot or a change event). */
  function take(a) {
    if (!a?.id) return;
    const known = alerts.has(a.id);
    a._seq = alerts.get(a.id)?._seq ?? ++seq;
    alerts.set(a.id, a);
    if (caughtUp && !known) fresh.add(a.id);
    // An alert is signalled once, when it is first urgent and new after the page caught up
    // (raised so, or a possible entry confirmed); the backlog is not news.
    if (priorityOf(a) === 1 && (a.review?.state ?? 'new') === 'new' && !signalled.has(a.id)) {
      signalled.add(a.id);
      if (caughtUp) {
        fresh.add(a.id);
        announce.textContent = `New urgent alert: ${words(a.type)}, ${names.get(a.person) ?? a.person}`;
        signal();
      }
    }
    if ((a.review?.state ?? 'new') !== 'new') fresh.delete(a.id);
    if (a.id === selected) {
      const st = detail.querySelector('[data-testid=alert-state]');
      if (st) st.textContent = reviewText(a.review);
    }
  }

  // The queue opens on the alerts as they stand (one `snapshot` event, in the order they were
  // raised) rather than a replay of every change since the first; a reconnection resumes after
  // the last event seen.
  follow('/v1/alerts/stream?snapshot=true', {
    signal: controller.signal,
    onState: (s, why) => {
      live.textContent = { live: '● live', reconnecting: 'reconnecting…', refused: `stopped: ${why}` }[s];
      live.className = `live ${s}`;
      banner.hidden = s === 'live';
      banner.textContent = s === 'refused'
        ? `Live alerts stopped: ${why}. The queue is not being updated; sign in again.`
        : 'Live alerts are not arriving (reconnecting…). The queue may be out of date.';
    },
    onEvent: (ev) => {
      // The stream's backlog is done: what comes from now on is news.
      if (ev.event === 'caught_up') {
        caughtUp = true;
        // The queue as it stands is drawn: a User Timing mark for measurements
        // (scripts/console-bench.mjs).
        render();
        if (!performance.getEntriesByName('queue-ready').length) performance.mark('queue-ready');
        return;
      }
      let a;
      try { a = JSON.parse(ev.data); } catch { return; }
      // System alerts (ingest silent) are about the service, not a person: shown by the live
      // indicator, never in the queue.
      if (ev.event === 'system_alert') {
        live.textContent = a.end ? '● live' : `● live — ${words(a.type)}: ${a.message}`;
        live.classList.toggle('system-fault', !a.end);
        return;
      }
      if (ev.event === 'snapshot') for (const one of a) take(one);
      else take(a);
      schedule();
    },
  });
  refreshHits();
  render();
  return () => {
    controller.abort();
    clearInterval(ticker);
    clearInterval(hitsTimer);
    document.removeEventListener('keydown', onKey);
    document.title = 'tagstream console';
  };
}

const HITS_EVERY_MS = 15_000;
const CERTAINTY = { certain: 0, possible: 1 };

function byCertaintyThenDistance(a, b) {
  return (CERTAINTY[a.certainty] ?? 2) - (CERTAINTY[b.certainty] ?? 2) || a.closest_m - b.closest_m
    || a.id.localeCompare(b.id);
}

const MUTE = 'tagstream.mute';
const muted = () => sessionStorage.getItem(MUTE) === '1';
const setMuted = (on) => sessionStorage.setItem(MUTE, on ? '1' : '0');
const muteText = () => (muted() ? 'Sound off' : 'Sound on');

/** The audible signal for a new urgent alert (unless muted): a short tone. Counted on the page
 * (`data-signals`) so it can be checked. */
function signal() {
  if (muted()) return;
  document.body.dataset.signals = String(Number(document.body.dataset.signals || 0) + 1);
  try {
    signal.ctx ??= new AudioContext();
    const tone = signal.ctx.createOscillator();
    const gain = signal.ctx.createGain();
    tone.frequency.value = 880;
    gain.gain.value = 0.08;
    tone.connect(gain).connect(signal.ctx.destination);
    tone.start();
    tone.stop(signal.ctx.currentTime + 0.3);
  } catch {
    // No audio device or not allowed before a gesture: the title and highlight still show it.
  }
}

/** An action's refusal in words (the server's message names the alert by its id). */
function actionError(e) {
  if (/already resolved/.test(e.message)) return 'This alert was resolved meanwhile (by someone else): nothing more to do.';
  return e.message;
}

function reviewText(r) {
  if (!r) return 'new';
  const parts = [r.state];
  if (r.assignee) parts.push(`assigned to ${r.assignee}`);
  if (r.outcome) parts.push(`outcome ${words(r.outcome)}`);
  if (r.reviewed_by) parts.push(`by ${r.reviewed_by} ${fmtTime(r.reviewed_at)}`);
  return parts.join(' · ');
}

function historyTable(history) {
  if (!history?.length) return message('No review yet.');
  return table(['time', 'by', 'action', 'state', 'assignee', 'outcome', 'notes'],
    history.map((r) => h('tr', {}, h('td', {}, fmtTime(r.t)), h('td', {}, r.user), h('td', {}, r.action),
      h('td', {}, r.state), h('td', {}, r.assignee ?? ''), h('td', {}, words(r.outcome ?? '')), h('td', {}, r.notes ?? ''))),
    { class: 'history' });
}
