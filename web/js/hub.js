// The hub's page: the live alert queue (Server-Sent Events), filters, acknowledge / assign /
// resolve with outcome and notes, a map of the person's positions around the selected alert with
// their curfew addresses and zones, and the crime hits awaiting review.

import { get, post, follow, qs } from './api.js';
import { createMap, drawPlaces, drawTrail, fit, addLabels } from './map.js';
import { h, fill, table, message, field, toast, fmtTime, words } from './ui.js';
import { loadHits, hitRow, hitDetail, reviewForm, HIT_COLUMNS, NO_HITS_API } from './hits.js';

const STATES = ['new', 'acknowledged', 'assigned', 'resolved'];
const OUTCOMES = ['breach_confirmed', 'reasonable_excuse', 'authorised_absence', 'false_alarm', 'duplicate'];
const MARGIN_MS = 2 * 3600_000;
const SHOW_ROWS = 300;

export async function hubPage(root) {
  const alerts = new Map();
  const controller = new AbortController();
  let selected = null;

  const type = h('select', { name: 'type' }, h('option', { value: '' }, 'all types'));
  const state = h('select', { name: 'state' },
    h('option', { value: 'open' }, 'open (not resolved)'), h('option', { value: '' }, 'all states'),
    STATES.map((s) => h('option', { value: s }, s)));
  const person = h('input', { name: 'person', size: 8, placeholder: 'e.g. P12' });
  const live = h('span', { class: 'live', 'data-testid': 'live' }, 'connecting…');
  const count = h('span', { class: 'count', 'data-testid': 'queue-count' });
  const rows = h('tbody');
  const detail = h('section', { class: 'card detail', 'aria-live': 'polite' }, message('Select an alert to review it.'));
  const hitsBox = h('section', { class: 'card hits', id: 'hits' });
  const hitsLink = h('a', { href: '#hits', class: 'hits-link' });

  fill(root, h('div', { class: 'hub' },
    h('section', { class: 'card queue' },
      h('h2', {}, 'Alert queue ', live, hitsLink),
      h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() },
        field('Type', type), field('State', state), field('Person', person), count),
      h('div', { class: 'scroll' }, h('table', { class: 'alerts', 'data-testid': 'alerts' },
        h('thead', {}, h('tr', {}, ['start', 'type', 'person', 'state', 'assignee'].map((c) => h('th', { scope: 'col' }, c)))),
        rows))),
    detail),
  hitsBox);
  for (const el of [type, state]) el.addEventListener('change', render);
  person.addEventListener('input', render);

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
    if (state.value && state.value !== 'open' && st !== state.value) return false;
    if (person.value.trim() && a.person !== person.value.trim()) return false;
    return true;
  }

  function render() {
    const types = [...new Set([...alerts.values()].map((a) => a.type))].sort();
    if (types.length !== type.options.length - 1) {
      const keep = type.value;
      fill(type, h('option', { value: '' }, 'all types'), types.map((t) => h('option', { value: t }, words(t))));
      type.value = keep;
    }
    const shown = [...alerts.values()].filter(matches)
      .sort((a, b) => b.start.localeCompare(a.start) || b._seq - a._seq);
    count.textContent = `${shown.length} of ${alerts.size} alerts`;
    fill(rows, shown.slice(0, SHOW_ROWS).map((a) => h('tr', {
      class: `${a.id === selected ? 'selected' : ''} ${a.review?.state}${a.withdrawn ? ' withdrawn' : ''}`,
      dataset: { alert: a.id, type: a.type },
    },
    h('td', {}, fmtTime(a.start)),
    h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => select(a.id) },
      words(a.type), a.code ? ` ${a.code}` : '')),
    h('td', {}, a.person),
    h('td', {}, `${a.review?.state ?? 'new'}${a.withdrawn ? ' · withdrawn' : ''}`),
    h('td', {}, a.review?.assignee ?? ''))));
  }

  async function select(id) {
    selected = id;
    render();
    const a = alerts.get(id);
    const history = h('div');
    const mapEl = h('div', { class: 'map alert-map', 'data-testid': 'alert-map' });
    const mapNote = h('p', { class: 'hint' });
    fill(detail,
      h('h2', {}, `${words(a.type)}${a.code ? ' ' + a.code : ''} · ${a.person}`),
      h('dl', { class: 'facts wide' },
        h('dt', {}, 'Alert'), h('dd', {}, a.id),
        h('dt', {}, 'From'), h('dd', {}, fmtTime(a.start)),
        h('dt', {}, 'To'), h('dd', {}, a.end ? fmtTime(a.end) : 'open'),
        h('dt', {}, 'Activation'), h('dd', {}, `${a.activation}${a.late ? ' (raised late)' : ''}`),
        h('dt', {}, 'Rule'), h('dd', {}, `${a.rule}${a.confidence ? ', ' + a.confidence : ''}`),
        h('dt', {}, 'State'), h('dd', { 'data-testid': 'alert-state' }, reviewText(a.review)),
        ...(a.withdrawn ? [h('dt', {}, 'Withdrawn'), h('dd', { 'data-testid': 'alert-withdrawn' },
          `${a.withdrawn.reason}${a.withdrawn.change == null ? '' : ` (change ${a.withdrawn.change})`}: no longer holds`)] : []),
        ...(a.amended_by != null ? [h('dt', {}, 'Amended'), h('dd', {},
          `raised or changed by change ${a.amended_by} to the orders`)] : [])),
      mapEl, mapNote,
      h('h3', {}, 'Review'),
      actionForms(a),
      history);
    get(`/v1/alerts/${encodeURIComponent(id)}`).then((r) => fill(history, historyTable(r.history)))
      .catch((e) => fill(history, message(e.message, 'error')));
    await alertMap(a, mapEl, mapNote);
  }

  function actionForms(a) {
    const done = (label) => (body) => {
      alerts.set(body.id, { ...alerts.get(body.id), ...body });
      toast(`${label}: ${a.id}`);
      select(body.id);
    };
    const act = async (action, body, ok, form) => {
      try {
        ok(await post(`/v1/alerts/${encodeURIComponent(a.id)}/${action}`, body));
      } catch (e) {
        form.append(message(e.message, 'error'));
      }
    };
    const ackNotes = h('input', { name: 'note' });
    const ack = h('form', { class: 'actions', onsubmit: (e) => { e.preventDefault(); act('acknowledge', { notes: ackNotes.value || null }, done('Acknowledged'), ack); } },
      field('Note', ackNotes), h('button', { type: 'submit' }, 'Acknowledge'));
    const assignee = h('input', { name: 'assignee', required: true });
    const assign = h('form', { class: 'actions', onsubmit: (e) => { e.preventDefault(); act('assign', { assignee: assignee.value.trim() }, done('Assigned'), assign); } },
      field('Assign to', assignee), h('button', { type: 'submit' }, 'Assign'));
    const outcome = h('select', { name: 'outcome', required: true }, h('option', { value: '' }, 'choose…'), OUTCOMES.map((o) => h('option', { value: o }, words(o))));
    const notes = h('textarea', { name: 'resolve-notes', rows: 2, cols: 30 });
    const resolve = h('form', { class: 'actions', onsubmit: (e) => { e.preventDefault(); act('resolve', { outcome: outcome.value, notes: notes.value || null }, done('Resolved'), resolve); } },
      field('Outcome', outcome), field('Resolution notes', notes), h('button', { type: 'submit' }, 'Resolve'));
    return h('div', { class: 'review-forms' }, ack, assign, resolve);
  }

  async function alertMap(a, mapEl, note) {
    const { map, overlay } = await createMap(mapEl);
    const start = Date.parse(a.start);
    const end = a.end ? Date.parse(a.end) : start;
    const from = new Date(start - MARGIN_MS).toISOString();
    const to = new Date(Math.min(end + MARGIN_MS, start + 30 * 86400_000)).toISOString();
    try {
      const [who, trail] = await Promise.all([
        get(`/v1/people/${encodeURIComponent(a.person)}`),
        get(`/v1/activations/${encodeURIComponent(a.activation)}/trail${qs({ from, to })}`),
      ]);
      drawPlaces(overlay, who.orders);
      const positions = drawTrail(overlay, trail);
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

  async function refreshHits() {
    const hits = await loadHits({ state: 'pending' }).catch((e) => e);
    if (hits instanceof Error) return fill(hitsBox, h('h2', {}, 'Crime hits awaiting review'), message(hits.message, 'error'));
    if (hits === null) return fill(hitsBox, h('h2', {}, 'Crime hits awaiting review'), message(NO_HITS_API));
    hitsLink.textContent = hits.length ? `${hits.length} crime hit${hits.length === 1 ? '' : 's'} awaiting review` : '';
    const box = h('div');
    const open = (hit) => hitDetail(box, hit, reviewForm(hit, () => { fill(box); refreshHits(); }));
    // Hits the hub had confirmed or rejected that no longer hold: kept, struck through, with why.
    const withdrawn = (await loadHits({ withdrawn: 'only' }).catch(() => []) || [])
      .filter((hit) => hit.review?.state !== 'pending');
    fill(hitsBox, h('h2', {}, `Crime hits awaiting review (${hits.length})`),
      hits.length ? table(HIT_COLUMNS, hits.map((hit) => hitRow(hit, open)), { class: 'hit-list', 'data-testid': 'pending-hits' })
        : message('No hits are waiting for review.'),
      withdrawn.length ? [h('h3', {}, `Reviewed hits since withdrawn (${withdrawn.length})`),
        table(HIT_COLUMNS, withdrawn.map((hit) => hitRow(hit, open)), { class: 'hit-list', 'data-testid': 'withdrawn-hits' })] : '',
      box);
  }

  let seq = 0;
  follow('/v1/alerts/stream', {
    signal: controller.signal,
    onState: (s, detail) => {
      live.textContent = { live: '● live', reconnecting: 'reconnecting…', refused: `stopped: ${detail}` }[s];
      live.className = `live ${s}`;
    },
    onEvent: (ev) => {
      let a;
      try { a = JSON.parse(ev.data); } catch { return; }
      // System alerts (ingest silent) are about the service, not a person: shown by the live
      // indicator, never in the queue.
      if (ev.event === 'system_alert') {
        live.textContent = a.end ? '● live' : `● live — ${words(a.type)}: ${a.message}`;
        live.classList.toggle('system-fault', !a.end);
        return;
      }
      if (!a.id) return;
      a._seq = alerts.get(a.id)?._seq ?? ++seq;
      alerts.set(a.id, a);
      if (a.id === selected) {
        const st = detail.querySelector('[data-testid=alert-state]');
        if (st) st.textContent = reviewText(a.review);
      }
      schedule();
    },
  });
  refreshHits();
  render();
  return () => controller.abort();
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
