// Alert priority for the hub's queue: one documented table (docs/console.md, "Alert priority")
// from the alert's type, code and confidence, and its place in the queue from its state. Pure
// functions, so the ordering is the same wherever it is used.

/** Priority 1 (urgent) to 4 (low) by type; curfew by code. */
const BY_TYPE = {
  strap_tamper: 1,
  exclusion_zone_entry: 1,
  inclusion_zone_exit: 1,
  alcohol_removal: 1,
  curfew_violation: 2,
  no_contact: 2,
  hmu_moved: 2,
  battery_dead: 2,
  drinking_event: 2,
  alcohol_obstruction: 2,
  hmu_power_loss: 3,
  device_fault: 3,
  device_clock: 3,
  environmental_alcohol: 4,
  battery_low: 4,
};

/** Curfew codes: out when the window opens, left during it or out all of it (2); home late or
 * left before it closed (3). */
const CURFEW = { AL08: 2, AL10: 2, AL12: 2, AL09: 3, AL11: 3 };

export const PRIORITY_NAMES = { 1: 'urgent', 2: 'high', 3: 'medium', 4: 'low' };

/** The alert's priority, 1 (urgent) to 4 (low). A `possible` alert (its evidence only
 * overlapped the zone: docs/quality.md) ranks one below its confirmed kind. */
export function priorityOf(a) {
  let p = a.type === 'curfew_violation' ? CURFEW[a.code] ?? 2 : BY_TYPE[a.type] ?? 3;
  if (a.confidence === 'possible') p = Math.min(p + 1, 4);
  return p;
}

/** Where the alert's state puts it: open (0), withdrawn (1), resolved (2). */
function band(a) {
  if (a.review?.state === 'resolved') return 2;
  return a.withdrawn ? 1 : 0;
}

/** The queue's default order: open before withdrawn before resolved, then priority, then the
 * oldest first (the one waiting longest), then arrival. */
export function byPriority(a, b) {
  return band(a) - band(b) || priorityOf(a) - priorityOf(b) || a.start.localeCompare(b.start)
    || a._seq - b._seq;
}

/** Orders for the queue's sortable columns: each ascending; the caller reverses for descending. */
export const COLUMN_ORDER = {
  priority: byPriority,
  age: (a, b) => b.start.localeCompare(a.start) || a._seq - b._seq,
  start: (a, b) => a.start.localeCompare(b.start) || a._seq - b._seq,
  type: (a, b) => a.type.localeCompare(b.type) || byPriority(a, b),
  person: (a, b) => a.person.localeCompare(b.person, 'en', { numeric: true }) || byPriority(a, b),
  state: (a, b) => (a.review?.state ?? 'new').localeCompare(b.review?.state ?? 'new') || byPriority(a, b),
  assignee: (a, b) => (a.review?.assignee ?? '').localeCompare(b.review?.assignee ?? '') || byPriority(a, b),
};

/** The actions an alert's state allows: a resolved alert none; an acknowledged one is not
 * acknowledged again. */
export function actionsFor(a) {
  const st = a.review?.state ?? 'new';
  if (st === 'resolved') return [];
  if (st === 'new') return ['acknowledge', 'assign', 'resolve'];
  return ['assign', 'resolve'];
}

/** "3 min", "2 h 05 min", "4 d 3 h": how long ago `t` was, at `now_ms`. */
export function age(t, nowMs) {
  const s = Math.max(0, Math.round((nowMs - Date.parse(t)) / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr} h ${String(m % 60).padStart(2, '0')} min`;
  return `${Math.floor(hr / 24)} d ${hr % 24} h`;
}
