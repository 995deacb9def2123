// Crime hits, shared by the hub (review: confirm / reject) and police (confirmed hits of their
// force): the hit's facts, its evidence map (crime point and vicinity, labelled positions with
// confidence circles, track) and its positions table. A withdrawn hit (it no longer holds) is
// shown struck through and labelled with why; it cannot be reviewed.

import { get, post, qs, ApiError } from './api.js';
import { documentButtons } from './documents.js';
import { h, svg, fill, table, message, field, fmtTime, fmtNum, fmtDuration, toast } from './ui.js';

/** The hits the caller may see, or null when this server has no crime hits API. */
export async function loadHits(params = {}) {
  try {
    return await get(`/v1/hits${qs(params)}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

/** The police crime type ids in words (domain page, police CSV column 2). */
const CRIME_TYPES = {
  RB: 'Robbery',
  BIAD: 'Burglary in a dwelling',
  AB: 'Aggravated burglary',
  BOTD: 'Burglary in a building other than a dwelling',
  TOMV: 'Theft of a motor vehicle',
  TFP: 'Theft from the person',
  TFMV: 'Theft from a motor vehicle',
};

/** "Burglary in a dwelling (BIAD)"; an unknown id as it is. */
export function crimeType(code) {
  return CRIME_TYPES[code] ? `${CRIME_TYPES[code]} (${code})` : code;
}

// Leaflet and the map code load when the first map is drawn, not with the page (the first load
// is the queue or the caseload; Leaflet is most of the console's bytes).
const maps = () => import('./map.js');

export const NO_HITS_API = 'Crime hits are not available on this server (no crime matching yet).';

/** "withdrawn: <reason>" for a withdrawn hit (the reason names the change, if one caused it). */
export function withdrawnLabel(hit) {
  return hit.withdrawn ? `withdrawn: ${hit.withdrawn.reason}` : '';
}

/** A one-line summary row for a list of hits; `open(hit)` shows it. */
export function hitRow(hit, open, extra = []) {
  const review = hit.review?.state ?? '';
  return h('tr', { dataset: { hit: hit.id }, class: hit.withdrawn ? 'withdrawn' : false },
    h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => open(hit) }, hit.crime_ref),
      hit.crime_version > 1 ? h('small', {}, ` v${hit.crime_version}`) : ''),
    h('td', {}, crimeType(hit.crime_type)),
    h('td', {}, `${fmtTime(hit.crime_from)} – ${fmtTime(hit.crime_to)}`),
    h('td', {}, hit.person),
    h('td', {}, h('span', { class: `badge ${hit.certainty}` }, hit.certainty), hit.weaker_evidence ? ' (weaker evidence)' : ''),
    h('td', { class: 'num' }, fmtNum(hit.closest_m, 'm')),
    hit.withdrawn
      ? h('td', { class: 'withdrawn-label', title: withdrawnLabel(hit), 'data-testid': 'hit-withdrawn' }, `${review} · ${withdrawnLabel(hit)}`)
      : h('td', {}, review),
    ...extra);
}

export const HIT_COLUMNS = ['crime', 'type', 'window', 'person', 'certainty', 'closest', 'review'];

/** The detail of one hit with its evidence map; `actions` (an element) is placed under the facts.
 * `orders` (the hub's: a promise of the person's orders) draws their curfew addresses and zones
 * under the evidence; police are not given them. */
export async function hitDetail(container, hit, actions, { orders = null } = {}) {
  const mapEl = h('div', { class: 'map hit-map', 'data-testid': 'hit-map' });
  const alg = hit.algorithm || {};
  // Filled once the evidence is drawn: the crime's marker and each position's, by label.
  let drawn = { crime: null, positions: new Map() };
  let shown = null;
  const centre = h('button', { type: 'button', class: 'secondary', 'data-testid': 'centre-on-crime',
    onclick: async () => (await maps()).showMarker(shown, drawn.crime) }, 'Centre on crime');
  fill(container,
    h('h3', {}, `Hit on crime ${hit.crime_ref}`, hit.crime_version ? ` (version ${hit.crime_version})` : ''),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Crime'), h('dd', {}, `${crimeType(hit.crime_type)} · batch ${hit.batch_id} · ${hit.force}`),
      h('dt', {}, 'Window'), h('dd', {}, `${fmtTime(hit.crime_from)} – ${fmtTime(hit.crime_to)}`),
      h('dt', {}, 'Person'), h('dd', {}, `${hit.person} (activation ${hit.activation})`),
      h('dt', {}, 'Certainty'), h('dd', {}, `${hit.certainty}${hit.weaker_evidence ? ', weaker evidence' : ''}`),
      h('dt', {}, 'Closest'), h('dd', {}, `${fmtNum(hit.closest_m, 'm')} at ${fmtTime(hit.closest_t)}; ${fmtDuration((hit.inside_s ?? 0) * 1000)} inside the vicinity`),
      h('dt', {}, 'Algorithm'), h('dd', {}, `${alg.name ?? '?'}, vicinity ${fmtNum(alg.radius_m ?? hit.radius_m, 'm')}`),
      h('dt', {}, 'Review'), h('dd', {}, hit.review?.state === 'pending' ? 'awaiting hub review'
        : `${hit.review?.state} by ${hit.review?.by ?? '?'} ${fmtTime(hit.review?.at)}${hit.review?.reason ? ': ' + hit.review.reason : ''}`),
      ...(hit.withdrawn ? [h('dt', {}, 'Withdrawn'), h('dd', { class: 'withdrawn-label', 'data-testid': 'hit-withdrawn-reason' },
        `${withdrawnLabel(hit)} — kept with its review history; it no longer holds`)] : [])),
    actions || '',
    packButtons(hit),
    h('div', { class: 'map-tools' }, centre, h('small', {}, 'Position labels in the table below show each position on the map.')),
    mapEl,
    distanceChart(hit),
    h('p', { class: 'legend' }, h('span', { class: 'key crime' }), 'crime ', h('span', { class: 'key vicinity' }), 'vicinity ',
      h('span', { class: 'key inwin' }), 'position in the window ', h('span', { class: 'key outwin' }), 'outside it ',
      h('span', { class: 'key conf' }), 'confidence circle'),
    table(['label', 'time', 'distance', 'precision', 'source', 'speed', 'heading', 'in window'],
      (hit.positions || []).map((p) => h('tr', { class: p.in_window ? 'in-window' : '' },
        h('td', {}, h('button', { type: 'button', class: 'link', title: `Show ${p.label} on the map`,
          onclick: async () => (await maps()).showMarker(shown, drawn.positions.get(p.label)) }, p.label)),
        h('td', {}, fmtTime(p.t)), h('td', { class: 'num' }, fmtNum(p.distance_m, 'm')),
        h('td', { class: 'num' }, fmtNum(p.precision_m, 'm')), h('td', {}, p.source ?? ''),
        h('td', { class: 'num' }, fmtNum(p.speed_kmh, 'km/h', 1)), h('td', { class: 'num' }, fmtNum(p.heading_deg, '°')),
        h('td', {}, p.in_window ? 'yes' : 'no'))),
      { class: 'positions' }));
  const { createMap, drawHitEvidence, drawPlaces, showPlace } = await maps();
  const { map, overlay } = await createMap(mapEl);
  shown = map;
  try {
    const personOrders = await orders?.catch(() => null);
    if (personOrders) {
      // The person's curfew addresses and zones, each also a button that shows it on the map
      // (a canvas layer is not in the page's text, nor reachable by keyboard).
      const places = drawPlaces(overlay, personOrders);
      mapEl.after(places.length
        ? h('ul', { class: 'plain places', 'data-testid': 'hit-places', 'aria-label': 'Curfew addresses and zones on the map' },
          places.map((place) => h('li', {}, h('button', { type: 'button', class: 'link', title: 'Show it on the map',
            onclick: () => showPlace(map, place) }, place.label))))
        : message('No curfew address or zone in their orders.'));
    }
    drawn = drawHitEvidence(map, overlay, await get(`/v1/hits/${encodeURIComponent(hit.id)}/evidence`));
    mapEl.dataset.ready = 'true';
  } catch (e) {
    mapEl.after(message(e.message, 'error'));
  }
}

/** The hit's evidence pack: the PDF, its JSON and its manifest. */
function packButtons(hit) {
  const id = encodeURIComponent(hit.id);
  return documentButtons([
    ['Evidence pack (PDF)', `/v1/hits/${id}/pack.pdf`, `${hit.id}-pack.pdf`, 'pack-pdf'],
    ['Pack JSON', `/v1/hits/${id}/pack.json`, `${hit.id}-pack.json`, 'pack-json'],
    ['Manifest', `/v1/hits/${id}/pack-manifest.json`, `${hit.id}-manifest.json`, 'pack-manifest'],
  ], 'hit-pack');
}

/**
 * Distance from the crime over time: each position's distance (computed by the server with the
 * hit, `positions[].distance_m`), the crime's window shaded, the vicinity's radius as a line; each
 * point's time and distance on hover (and to screen readers, as the table below also gives).
 */
export function distanceChart(hit) {
  const ps = (hit.positions || []).filter((p) => p.distance_m != null);
  if (ps.length < 2) return '';
  const [W, H, L, R, T, B] = [640, 180, 52, 12, 10, 26];
  const ts = ps.map((p) => Date.parse(p.t));
  const [t0, t1] = [Math.min(...ts, Date.parse(hit.crime_from)), Math.max(...ts, Date.parse(hit.crime_to))];
  const radius = hit.radius_m ?? hit.algorithm?.radius_m ?? 0;
  const dMax = Math.max(radius * 1.5, ...ps.map((p) => p.distance_m)) || 1;
  const x = (t) => L + ((t - t0) / Math.max(t1 - t0, 1)) * (W - L - R);
  const y = (d) => T + (1 - d / dMax) * (H - T - B);
  const window = svg('rect', { x: x(Date.parse(hit.crime_from)), y: T, height: H - T - B, class: 'window',
    width: Math.max(1, x(Date.parse(hit.crime_to)) - x(Date.parse(hit.crime_from))) });
  const line = svg('polyline', { class: 'distance', points: ps.map((p) => `${x(Date.parse(p.t)).toFixed(1)},${y(p.distance_m).toFixed(1)}`).join(' ') });
  const dots = ps.map((p) => svg('circle', { cx: x(Date.parse(p.t)).toFixed(1), cy: y(p.distance_m).toFixed(1), r: 3, class: p.in_window ? 'in' : 'out' },
    svg('title', {}, `${p.label} ${fmtTime(p.t)}: ${fmtNum(p.distance_m, 'm')} from the crime`)));
  const vicinity = svg('line', { x1: L, x2: W - R, y1: y(radius), y2: y(radius), class: 'vicinity' });
  const labels = [
    svg('text', { x: L - 4, y: y(0), 'text-anchor': 'end' }, '0 m'),
    svg('text', { x: L - 4, y: y(radius) + 4, 'text-anchor': 'end' }, `${Math.round(radius)} m`),
    svg('text', { x: L - 4, y: T + 8, 'text-anchor': 'end' }, `${Math.round(dMax)} m`),
    svg('text', { x: L, y: H - 6 }, fmtTime(t0)),
    svg('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, fmtTime(t1)),
  ];
  return h('figure', { class: 'distance-chart', 'data-testid': 'distance-chart' },
    svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
      'aria-label': `Distance from the crime over time: ${ps.length} positions, closest ${fmtNum(hit.closest_m, 'm')}` },
    window, vicinity, line, ...dots, ...labels),
    h('figcaption', {}, 'Distance from the crime over time (UK time): the shaded band is the crime\'s window, the dashed line the vicinity.'));
}

/** Confirm / reject controls for a pending hit (hub). `done()` after a decision. A withdrawn hit's
 * controls are disabled (the API refuses the review with 409). */
export function reviewForm(hit, done) {
  const closed = Boolean(hit.withdrawn);
  const reason = h('input', { name: 'reason', required: true, size: 40, disabled: closed });
  const decide = async (decision) => {
    if (!reason.value.trim()) {
      reason.reportValidity();
      return;
    }
    try {
      await post(`/v1/hits/${encodeURIComponent(hit.id)}/review`, { decision, reason: reason.value.trim() });
      toast(`Hit ${hit.crime_ref} ${decision === 'confirm' ? 'confirmed' : 'rejected'}`);
      done();
    } catch (e) {
      form.append(message(e.message, 'error'));
    }
  };
  const form = h('form', { class: 'actions', onsubmit: (ev) => { ev.preventDefault(); if (!closed) decide('confirm'); } },
    field('Reason for the decision', reason),
    h('button', { type: 'submit', disabled: closed }, 'Confirm hit'),
    h('button', { type: 'button', class: 'secondary', disabled: closed, onclick: () => decide('reject') }, 'Reject hit'),
    closed ? message('This hit was withdrawn: it can no longer be confirmed or rejected.') : '');
  return form;
}
