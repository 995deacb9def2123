// The API client: bearer token from sessionStorage, the stated purpose on every call, errors as
// ApiError with the server's message, and a Server-Sent Events reader over fetch() (EventSource
// cannot send the Authorization header).

const TOKEN = 'tagstream.token';
const PURPOSE = 'tagstream.purpose';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  set token(v) { v ? sessionStorage.setItem(TOKEN, v) : sessionStorage.removeItem(TOKEN); },
  get purpose() { return sessionStorage.getItem(PURPOSE) || ''; },
  set purpose(v) { sessionStorage.setItem(PURPOSE, v); },
  clear() { sessionStorage.removeItem(TOKEN); sessionStorage.removeItem(PURPOSE); },
};

function headers(extra = {}) {
  const hs = { Authorization: `Bearer ${session.token}`, ...extra };
  if (session.purpose) hs['X-Purpose'] = session.purpose;
  return hs;
}

/** What a refusal means to the person using the console. */
function explain(status, body) {
  if (status === 403) return 'Not permitted: your role or caseload does not include this.';
  if (status === 401) return 'Your token was not accepted. Sign in again.';
  return body?.message || `The server answered ${status}.`;
}

async function check(res) {
  if (res.ok) return res;
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  throw new ApiError(res.status, body?.error || 'http', explain(res.status, body));
}

/** A request; `as` is 'json' (default), 'text', 'blob' or 'response'. */
export async function request(path, { method = 'GET', body, type, as = 'json' } = {}) {
  const extra = {};
  let payload = body;
  if (body !== undefined && type === undefined) {
    extra['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  } else if (type) {
    extra['Content-Type'] = type;
  }
  const res = await check(await fetch(path, { method, headers: headers(extra), body: payload }));
  if (as === 'response') return res;
  if (as === 'text') return res.text();
  if (as === 'blob') return res.blob();
  return res.json();
}

export const get = (path, opts) => request(path, opts);
export const post = (path, body, opts = {}) => request(path, { ...opts, method: 'POST', body });

/** A query string from an object, skipping empty values. */
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : '';
}

/**
 * Follows a Server-Sent Events stream until `signal` aborts, reconnecting with Last-Event-ID.
 * onEvent({id, event, data}) for each event; onState('live'|'reconnecting'|'refused', detail).
 */
export async function follow(path, { onEvent, onState, signal }) {
  let lastId = null;
  while (!signal.aborted) {
    try {
      const extra = { Accept: 'text/event-stream' };
      if (lastId) extra['Last-Event-ID'] = lastId;
      const res = await check(await fetch(path, { headers: headers(extra), signal }));
      onState('live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replaceAll('\r\n', '\n');
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const ev = parseEvent(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (ev.id) lastId = ev.id;
          if (ev.data !== undefined) onEvent(ev);
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status < 500) {
        onState('refused', e.message);
        return;
      }
    }
    if (signal.aborted) return;
    onState('reconnecting');
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function parseEvent(block) {
  const ev = { event: 'message' };
  const data = [];
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const key = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (key === 'data') data.push(value);
    else if (key === 'id') ev.id = value;
    else if (key === 'event') ev.event = value;
  }
  if (data.length) ev.data = data.join('\n');
  return ev;
}
