// A practitioner's day timeline: one row per UK day of the period, 24 hours across, coloured by
// where the trail says the person was — at a curfew address (home), away, or no data — with the
// curfew windows of their orders outlined over it. Computed from the positions already drawn on
// the map and the orders' timetables; hover a run for its times.

import { h, svg } from './ui.js';

const STEP_MIN = 5;
const GAP_MS = 30 * 60_000;
const ukParts = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'Europe/London', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
  weekday: 'short', hourCycle: 'h23',
});

/** UK local date (YYYY-MM-DD), weekday (mon…) and minute of the day of an instant. */
function uk(tMs) {
  const p = Object.fromEntries(ukParts.formatToParts(new Date(tMs)).map((x) => [x.type, x.value]));
  return { date: `${p.year}-${p.month}-${p.day}`, weekday: p.weekday.toLowerCase().slice(0, 3), minute: Number(p.hour) * 60 + Number(p.minute) };
}

function metres(a, b) {
  const rad = Math.PI / 180;
  const x = (b.lon - a.lon) * rad * Math.cos(((a.lat + b.lat) / 2) * rad);
  const y = (b.lat - a.lat) * rad;
  return Math.hypot(x, y) * 6_371_000;
}

const hm = (m) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
const toMin = (s) => Number(s.slice(0, 2)) * 60 + Number(s.slice(3, 5));
const PREVIOUS = { mon: 'sun', tue: 'mon', wed: 'tue', thu: 'wed', fri: 'thu', sat: 'fri', sun: 'sat' };

/** The timeline for `positions` ({lat, lon, t}) of the period [`fromMs`, `toMs`). */
export function dayTimeline(positions, orders, fromMs, toMs) {
  const curfews = orders.flatMap((o) => o.conditions.filter((c) => c.type === 'curfew'));
  const homes = curfews.flatMap((c) => c.addresses || []);
  const where = (p) => (homes.some((a) => metres(p, a) <= a.radius_m + 50) ? 'home' : 'away');
  // Each day's 5-minute buckets: the state of the position before them, when it was recent.
  const days = new Map();
  const row = (date, weekday) => {
    if (!days.has(date)) days.set(date, { weekday, buckets: new Array(1440 / STEP_MIN).fill('none') });
    return days.get(date);
  };
  for (let t = fromMs, i = -1; t < toMs; t += STEP_MIN * 60_000) {
    while (i + 1 < positions.length && positions[i + 1].t <= t) i++;
    const at = uk(t);
    const day = row(at.date, at.weekday);
    const p = positions[i];
    day.buckets[Math.floor(at.minute / STEP_MIN)] = p && t - p.t <= GAP_MS ? where(p) : 'none';
  }
  if (!days.size) return '';
  const [W, LABEL, ROW] = [720, 92, 18];
  const x = (m) => LABEL + (m / 1440) * (W - LABEL);
  const rows = [...days].map(([date, day], r) => {
    const y = 4 + r * (ROW + 4);
    const runs = [];
    day.buckets.forEach((state, b) => {
      const last = runs[runs.length - 1];
      if (last && last.state === state) last.to = (b + 1) * STEP_MIN;
      else runs.push({ state, from: b * STEP_MIN, to: (b + 1) * STEP_MIN });
    });
    // Curfew windows: those starting this weekday, and the tail of one started the day before.
    const windows = curfews.flatMap((c) => c.timetable || []).flatMap((w) => {
      const [s, e] = [toMin(w.start), toMin(w.end)];
      const out = [];
      if (w.days.includes(day.weekday)) out.push([s, e > s ? e : 1440]);
      if (e <= s && w.days.includes(PREVIOUS[day.weekday])) out.push([0, e]);
      return out;
    });
    return [
      svg('text', { x: 0, y: y + 13 }, `${date.slice(5)} ${day.weekday}`),
      ...runs.map((run) => svg('rect', { x: x(run.from), y, width: x(run.to) - x(run.from), height: ROW, class: `tl-${run.state}` },
        svg('title', {}, `${date} ${hm(run.from)}–${hm(run.to)}: ${run.state === 'none' ? 'no data' : run.state === 'home' ? 'at a curfew address' : 'away'}`))),
      ...windows.map(([a, b]) => svg('rect', { x: x(a), y: y - 1, width: x(b) - x(a), height: ROW + 2, class: 'tl-curfew' },
        svg('title', {}, `curfew ${hm(a)}–${hm(b % 1440)}`))),
    ];
  });
  const hours = [0, 6, 12, 18, 24].map((hr) => svg('text', { x: x(hr * 60), y: days.size * (ROW + 4) + 16, 'text-anchor': 'middle' }, `${String(hr).padStart(2, '0')}:00`));
  const height = days.size * (ROW + 4) + 22;
  return h('figure', { class: 'timeline', 'data-testid': 'day-timeline' },
    svg('svg', { viewBox: `0 0 ${W} ${height}`, width: W, height, role: 'img',
      'aria-label': `Day timeline over ${days.size} days: at a curfew address, away, or no data, with curfew windows outlined` },
    ...rows.flat(), ...hours),
    h('figcaption', { class: 'legend' }, h('span', { class: 'key tl-home' }), 'at a curfew address ', h('span', { class: 'key tl-away' }), 'away ',
      h('span', { class: 'key tl-none' }), 'no data ', h('span', { class: 'key tl-curfew' }), 'curfew window (UK time)'));
}
