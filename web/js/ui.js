// Small DOM and formatting helpers shared by the console's pages.

/** Creates an element: h('button', {type: 'button', onclick}, 'text', child…). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Creates an SVG element: svg('rect', {x: 1}, child…). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled form control: the label wraps its text and the control. */
export function field(text, control) {
  return h('label', { class: 'field' }, h('span', {}, text), control);
}

/** A table from column headers and rows of cells. */
export function table(headers, rows, attrs = {}) {
  return h('table', attrs,
    h('thead', {}, h('tr', {}, headers.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows));
}

/** A message box; kind is 'error', 'ok' or 'info'. Errors are announced to screen readers. */
export function message(text, kind = 'info') {
  return h('p', { class: `msg ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** A short notice at the bottom of the screen. */
export function toast(text) {
  const el = document.getElementById('toast');
  el.textContent = text;
  el.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove('show'), 4000);
}

const london = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'Europe/London', day: '2-digit', month: 'short', hour: '2-digit', minute: '2-digit',
  second: '2-digit',
});
const londonDate = new Intl.DateTimeFormat('en-CA', {
  timeZone: 'Europe/London', year: 'numeric', month: '2-digit', day: '2-digit',
});

/** An instant for people: UK local time, e.g. "03 Mar, 21:00:05". */
export function fmtTime(t) {
  if (!t) return '—';
  const d = typeof t === 'number' ? new Date(t) : new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : london.format(d);
}

/** An event time as a `<time>` element: UK local time shown, the instant (UTC) kept in its
 * `datetime` and said on hover. */
export function timeOf(t) {
  if (!t) return h('span', {}, 'none yet');
  return h('time', { datetime: t, title: `event time ${t} (UTC)` }, fmtTime(t));
}

/** The UK local date (YYYY-MM-DD) of an instant. */
export function ukDate(t) {
  return londonDate.format(new Date(t));
}

/** A duration in ms as "2 h 05 min" / "12 min" / "40 s". */
export function fmtDuration(ms) {
  if (ms == null) return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** A number with a unit, or a dash. */
export function fmtNum(v, unit = '', digits = 0) {
  return v == null ? '—' : `${Number(v).toFixed(digits)}${unit ? ' ' + unit : ''}`;
}

/** Human text for a snake_case code. */
export function words(code) {
  return String(code ?? '').replaceAll('_', ' ');
}

/** Value of a `<input type="datetime-local">` for an instant (browser-local wall time). */
export function toLocalInput(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Saves a Blob as a download. */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
