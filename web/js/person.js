// The person in context, beside an alert or a hit: who they are (name, address, offender
// manager), what their orders require now (curfew hours at which address, zones and when they
// apply, alcohol monitoring), which tags they wear, their last contact (newest reading of any
// kind from any of their tags) and their other open alerts.

import { h, message, fmtTime, timeOf, words } from './ui.js';
import { priorityOf, PRIORITY_NAMES } from './priority.js';

const DAY_NAMES = { mon: 'Mon', tue: 'Tue', wed: 'Wed', thu: 'Thu', fri: 'Fri', sat: 'Sat', sun: 'Sun' };
const WEEK = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

/** "Mon–Fri", "Sun–Thu", "Sat, Sun", "every day". */
export function dayRange(days = []) {
  const set = new Set(days);
  if (set.size === 7) return 'every day';
  // Runs of consecutive days, the week taken as a ring (so sun, mon … thu is Sun–Thu).
  const on = WEEK.map((d) => set.has(d));
  const start = on.findIndex((x, i) => x && !on[(i + 6) % 7]);
  if (start < 0) return days.map((d) => DAY_NAMES[d] ?? d).join(', ');
  const runs = [];
  for (let k = 0, i = start; k < 7; k++, i = (i + 1) % 7) {
    if (!on[i]) continue;
    if (on[(i + 6) % 7] && runs.length) runs[runs.length - 1][1] = i;
    else runs.push([i, i]);
  }
  return runs.map(([a, b]) => (a === b ? DAY_NAMES[WEEK[a]]
    : (b - a + 7) % 7 === 1 ? `${DAY_NAMES[WEEK[a]]}, ${DAY_NAMES[WEEK[b]]}` : `${DAY_NAMES[WEEK[a]]}–${DAY_NAMES[WEEK[b]]}`)).join(', ');
}

/** What one order requires, one line per condition. */
export function conditionLines(order) {
  const lines = [];
  for (const c of order.conditions || []) {
    if (c.type === 'curfew') {
      for (const t of c.timetable || []) {
        const where = (c.addresses || []).find((a) => a.id === t.address);
        lines.push(`Curfew ${dayRange(t.days)} ${t.start}–${t.end} at ${t.address}${where?.hmu ? ' (home unit)' : ''}`);
      }
    } else if (c.type === 'exclusion_zone' || c.type === 'inclusion_zone') {
      const when = (c.schedule || []).map((s) => `${dayRange(s.days)} ${s.start}–${s.end}`).join('; ');
      lines.push(`${c.type === 'exclusion_zone' ? 'Exclusion' : 'Inclusion'} zone “${c.name || c.id}”${when ? ', ' + when : ', at all times'}`);
    } else if (c.type === 'alcohol') {
      lines.push('Alcohol monitoring (abstinence)');
    } else if (c.type === 'trail') {
      lines.push('Location monitoring (trail)');
    } else {
      lines.push(words(c.type));
    }
  }
  return lines;
}

/** Whether `from`–`to` (dates or instants, `to` open when absent) includes `now_ms`. */
function inForce(from, to, nowMs) {
  const start = from ? Date.parse(from) : -Infinity;
  const end = to ? Date.parse(to) + (to.length <= 10 ? 86400_000 : 0) : Infinity;
  return start <= nowMs && nowMs < end;
}

/**
 * The panel: `record` is GET /v1/people/{id} ({person, activations, orders, last_contact}); `others` the
 * person's other open alerts (in priority order), each opened by `open(alert)`; what was in force
 * is as of `atMs` (the alert's or the crime's time: recorded data may be older than today).
 */
export function personPanel(record, others = [], open = () => {}, atMs = Date.now()) {
  const p = record.person || {};
  const now = atMs;
  const orders = (record.orders || []).filter((o) => inForce(o.from, o.to, now));
  const tags = (record.activations || []).filter((a) => inForce(a.from, a.to, now));
  const requirements = orders.flatMap(conditionLines);
  return h('div', {},
    h('h3', {}, p.name ? `${p.name} (${p.id})` : p.id),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Address'), h('dd', {}, p.address || '—'),
      h('dt', {}, 'Offender manager'), h('dd', {}, p.offender_manager || '—'),
      h('dt', {}, 'Tags'), h('dd', {}, tags.length
        ? tags.map((a) => `${a.tag} since ${fmtTime(a.from)}`).join('; ') : 'none fitted then'),
      h('dt', {}, 'Last contact'), h('dd', { 'data-testid': 'last-contact' }, timeOf(record.last_contact)),
      h('dt', {}, 'In force'), h('dd', { 'data-testid': 'in-force' }, requirements.length
        ? h('ul', { class: 'plain' }, requirements.map((line) => h('li', {}, line))) : 'no order in force then')),
    h('h4', {}, `Other open alerts (${others.length})`),
    others.length ? h('ul', { class: 'plain', 'data-testid': 'other-alerts' }, others.map((o) => h('li', {},
      h('span', { class: `prio p${priorityOf(o)}` }, PRIORITY_NAMES[priorityOf(o)]), ' ',
      h('button', { type: 'button', class: 'link', onclick: () => open(o) },
        `${words(o.type)}${o.code ? ' ' + o.code : ''}`), ` from ${fmtTime(o.start)}`)))
      : message('None.'));
}
