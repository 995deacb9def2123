// Maps: Leaflet with the deployment's tile server, or a local tile archive served by tagstream
// (over police force areas), or offline with police force area boundaries as the basemap; drawing of places (curfew addresses, zones), trails (gaps, labels, confidence
// circles) and crime-hit evidence.

import { fmtTime, fmtNum, fmtDuration } from './ui.js';

// Leaflet's minified build (its ES module is shipped unminified only), loaded once by a script
// tag from this origin; this module is itself loaded with the first map.
const L = window.L ?? await new Promise((resolve, reject) => {
  const script = document.createElement('script');
  script.src = '/console/vendor/leaflet/leaflet.js';
  script.onload = () => resolve(window.L);
  script.onerror = () => reject(new Error('the map library could not be loaded'));
  document.head.append(script);
});

export { L };

let settings;
let basemap;

async function loadSettings() {
  settings ??= fetch('/console/config.json').then((r) => r.json()).catch(() => ({}));
  return settings;
}

async function loadBasemap(url) {
  basemap ??= fetch(url).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  return basemap;
}

const ENGLAND_WALES = [[49.9, -6.4], [55.9, 1.8]];

/** A map in `el` with its basemap; returns {map, overlay} (overlay: a layer group to draw on). */
export async function createMap(el) {
  const map = L.map(el, { preferCanvas: true, zoomSnap: 0.5, attributionControl: true });
  map.fitBounds(ENGLAND_WALES);
  const cfg = await loadSettings();
  // A local tile archive (served by tagstream itself) covers only its area: force areas stay
  // underneath as the basemap everywhere else.
  const local = typeof cfg.tile_url === 'string' && cfg.tile_url.startsWith('/');
  if (!cfg.tile_url || local) {
    el.classList.add('offline-map');
    const areas = await loadBasemap(cfg.basemap || '/console/basemap/force-areas.geojson');
    if (areas) {
      // In a pane of their own under the tiles (the overlay pane, where vectors go, is above).
      map.createPane('force-areas').style.zIndex = 150;
      L.geoJSON(areas, {
        pane: 'force-areas',
        renderer: L.canvas({ pane: 'force-areas' }),
        interactive: false,
        style: { color: '#7d8a99', weight: 1, fillColor: '#f4f1ea', fillOpacity: 1 },
      }).addTo(map);
      map.attributionControl.addAttribution('Police force areas: ONS (offline basemap)');
    }
  }
  if (cfg.tile_url) {
    const options = { maxZoom: 19, attribution: cfg.tile_attribution || '' };
    if (local) {
      // Deeper than the archive goes, its deepest tiles are enlarged; outside its bounds and
      // zooms nothing is asked for.
      if (cfg.tile_max_native_zoom != null) options.maxNativeZoom = cfg.tile_max_native_zoom;
      if (cfg.tile_min_native_zoom != null) options.minNativeZoom = cfg.tile_min_native_zoom;
      const b = cfg.tile_bounds;
      if (Array.isArray(b) && b.length === 4) options.bounds = [[b[1], b[0]], [b[3], b[2]]];
      options.className = 'local-tiles';
    }
    L.tileLayer(cfg.tile_url, options).addTo(map);
    if (cfg.tile_synthetic) syntheticLabel().addTo(map);
  }
  L.control.scale({ imperial: false }).addTo(map);
  const overlay = L.featureGroup().addTo(map);
  return { map, overlay };
}

/** The notice on every map drawn over made-up streets: they are the demo's, never evidence. */
function syntheticLabel() {
  const control = L.control({ position: 'bottomleft' });
  control.onAdd = () => {
    const div = L.DomUtil.create('div', 'synthetic-basemap');
    div.setAttribute('role', 'note');
    div.dataset.testid = 'synthetic-basemap';
    div.textContent = 'Synthetic demo streets — not real, not evidence';
    L.DomEvent.disableClickPropagation(div);
    return div;
  };
  return control;
}

/** Fits the view to the positions if there are any, else to everything drawn in `group`. */
export function fit(map, group, positions = [], maxZoom = 17) {
  const b = positions.length ? L.latLngBounds(positions.map((p) => [p.lat, p.lon])) : group.getBounds();
  if (b.isValid()) map.fitBounds(b.pad(0.15), { maxZoom, animate: false });
}

const STYLE = {
  curfew: { color: '#1f5fbf', weight: 2, dashArray: '6 4', fillOpacity: 0.08 },
  exclusion_zone: { color: '#c0392b', weight: 2, fillOpacity: 0.12 },
  inclusion_zone: { color: '#1e8449', weight: 2, fillOpacity: 0.06 },
};

/** Curfew addresses and zones of a person's orders. Returns the number of places drawn. */
export function drawPlaces(group, orders) {
  const places = [];
  const add = (label, layer) => {
    layer.bindTooltip(label).addTo(group);
    places.push({ label, layer });
  };
  for (const order of orders || []) {
    for (const c of order.conditions || []) {
      if (c.type === 'curfew') {
        for (const a of c.addresses || []) {
          const times = (c.timetable || []).filter((t) => t.address === a.id)
            .map((t) => `${t.start}–${t.end}`);
          add(`Curfew address: ${a.id} (${a.radius_m} m)${times.length ? ', ' + [...new Set(times)].join(', ') : ''}`,
            L.circle([a.lat, a.lon], { radius: a.radius_m, ...STYLE.curfew }));
        }
      } else if (c.type === 'exclusion_zone' || c.type === 'inclusion_zone') {
        const layer = zoneLayer(c);
        if (layer) add(`${c.type === 'exclusion_zone' ? 'Exclusion' : 'Inclusion'} zone: ${c.name || c.id}`, layer);
      }
    }
  }
  return places;
}

/** Brings a place drawn by `drawPlaces` into view and opens its label. */
export function showPlace(map, place) {
  const bounds = place.layer.getBounds();
  map.fitBounds(bounds.pad(0.5), { maxZoom: 17, animate: false });
  place.layer.openTooltip(bounds.getCenter());
}

function zoneLayer(z) {
  const g = z.geometry || {};
  const style = STYLE[z.type];
  if (g.type === 'Point' && z.radius_m) return L.circle([g.coordinates[1], g.coordinates[0]], { radius: z.radius_m, ...style });
  if (g.type === 'Polygon' || g.type === 'MultiPolygon') return L.geoJSON(g, { style });
  return null;
}

/** Text for a position's hover: label, time, precision, source, speed, heading. */
export function positionText(p) {
  return [
    `<b>${p.label ?? ''}</b> ${fmtTime(p.t)}`,
    `precision ${fmtNum(p.precision_m, 'm')} (${p.source ?? '?'})`,
    `speed ${fmtNum(p.speed_kmh, 'km/h', 1)}, heading ${fmtNum(p.heading_deg, '°')}`,
    p.gap_before ? '<i>after a gap in the trail</i>' : '',
    p.distance_m != null ? `${fmtNum(p.distance_m, 'm')} from the crime${p.in_window ? ', in the window' : ''}` : '',
  ].filter(Boolean).join('<br>');
}

/**
 * A trail (the API's GeoJSON): track split at gaps (gaps dashed), a numbered dot per position
 * with its confidence circle. Labels are shown on the map when there are few positions, else on
 * hover. Returns the positions [{lat, lon, t, props}] in time order.
 */
export function drawTrail(group, fc, { circles = true, map = null } = {}) {
  const positions = fc.features.filter((f) => f.properties.kind === 'position').map((f) => ({
    lon: f.geometry.coordinates[0], lat: f.geometry.coordinates[1],
    t: Date.parse(f.properties.t), props: f.properties,
  }));
  // With `map`, the view is set first: moving it after would redraw every layer again.
  if (map && positions.length) fit(map, group, positions);
  let segment = [];
  const flush = () => {
    if (segment.length > 1) L.polyline(segment, { color: '#5b2c83', weight: 3, opacity: 0.75, interactive: false }).addTo(group);
  };
  positions.forEach((p, i) => {
    if (p.props.gap_before && i > 0) {
      flush();
      const prev = positions[i - 1];
      L.polyline([[prev.lat, prev.lon], [p.lat, p.lon]], { color: '#c0392b', weight: 2, dashArray: '2 6' })
        .bindTooltip(`Gap: no positions for ${fmtDuration(p.t - prev.t)} (${p.props.label} starts a new sequence)`)
        .addTo(group);
      segment = [];
    }
    segment.push([p.lat, p.lon]);
  });
  flush();
  // A long trail (a month at a fix a minute is 45,000 positions) is drawn whole as its line, with
  // a dot for every position up to MAX_DOTS and for every n-th beyond (each gap's first always),
  // and confidence circles only up to MAX_CIRCLES: tens of thousands of markers would take
  // seconds to draw and could not be told apart at the zoom that shows them all.
  const every = Math.max(1, Math.ceil(positions.length / MAX_DOTS));
  const drawCircles = circles && positions.length <= MAX_CIRCLES;
  positions.forEach((p, i) => {
    if (i % every !== 0 && !p.props.gap_before && i !== positions.length - 1) return;
    if (drawCircles && p.props.precision_m) {
      L.circle([p.lat, p.lon], { radius: p.props.precision_m, color: '#2e86c1', weight: 1, opacity: 0.4, fillOpacity: 0.06, interactive: false }).addTo(group);
    }
    const dot = L.circleMarker([p.lat, p.lon], {
      radius: 4, color: p.props.gap_before ? '#c0392b' : '#5b2c83', weight: 2, fillColor: '#fff', fillOpacity: 1,
    }).addTo(group);
    // Tooltips are made when first shown, not for every dot up front.
    dot.bindTooltip(() => positionText(p.props));
  });
  positions.dotsEvery = every;
  positions.circlesDrawn = drawCircles;
  return positions;
}

const MAX_LABEL_CANDIDATES = 5000;

/** Above these counts a trail's dots are thinned and its confidence circles left out. */
const MAX_DOTS = 3000;
const MAX_CIRCLES = 2000;

/**
 * Sequence labels (A1, A2…) on the map for as many positions as fit without overlapping at the
 * current zoom, earliest first; redone after each zoom. `points`: [{lat, lon, label}].
 */
export function addLabels(map, group, points) {
  const layer = L.layerGroup().addTo(group);
  const place = () => {
    layer.clearLayers();
    // Labels placed so far, by 34 × 16 px cell: a new one is checked against the 3 × 3 cells
    // around it, not against every label (a month's trail has tens of thousands of points).
    const taken = new Map();
    const near = (xy) => {
      const [cx, cy] = [Math.floor(xy.x / 34), Math.floor(xy.y / 16)];
      for (let dx = -1; dx <= 1; dx++) {
        for (let dy = -1; dy <= 1; dy++) {
          if ((taken.get(`${cx + dx},${cy + dy}`) || []).some((q) => Math.abs(q.x - xy.x) < 34 && Math.abs(q.y - xy.y) < 16)) return true;
        }
      }
      return false;
    };
    const view = map.getBounds().pad(0.5);
    // At most MAX_LABEL_CANDIDATES points are considered (every n-th, earliest first): a few
    // hundred labels fit on a map, and projecting 45,000 points at every zoom would be slow.
    const every = Math.max(1, Math.ceil(points.length / MAX_LABEL_CANDIDATES));
    for (let i = 0; i < points.length; i += every) {
      const p = points[i];
      if (!view.contains([p.lat, p.lon])) continue;
      const xy = map.latLngToContainerPoint([p.lat, p.lon]);
      if (near(xy)) continue;
      const cell = `${Math.floor(xy.x / 34)},${Math.floor(xy.y / 16)}`;
      taken.set(cell, [...(taken.get(cell) || []), xy]);
      L.tooltip({ permanent: true, direction: 'right', offset: [5, 0], className: 'pos-label', interactive: false })
        .setLatLng([p.lat, p.lon]).setContent(String(p.label ?? '')).addTo(layer);
    }
  };
  place();
  map.on('zoomend moveend', place);
  return layer;
}

/**
 * A crime hit's evidence (GeoJSON from /v1/hits/{id}/evidence), shown around the vicinity and the
 * positions in the crime's window; positions are labelled where the labels fit (every one has its
 * hover text).
 */
export function drawHitEvidence(map, group, fc) {
  const focus = L.latLngBounds([]);
  const labels = [];
  const drawn = { crime: null, positions: new Map() };
  // The crime last: on top of the positions around it, never hidden under them.
  const order = { confidence: 0, track: 1, vicinity: 2, position: 3, crime: 4 };
  const features = [...fc.features].sort((a, b) => (order[a.properties.kind] ?? 9) - (order[b.properties.kind] ?? 9));
  for (const f of features) {
    const p = f.properties;
    const c = f.geometry.coordinates;
    switch (p.kind) {
      case 'vicinity': {
        const layer = L.geoJSON(f, { style: { color: '#d35400', weight: 3, dashArray: '6 4', fillColor: '#f0b27a', fillOpacity: 0.25 } })
          .bindTooltip(`Crime vicinity${p.radius_m ? ` (${p.radius_m} m)` : ''}`).addTo(group);
        focus.extend(layer.getBounds());
        break;
      }
      case 'confidence':
        L.geoJSON(f, { interactive: false, style: { color: '#2e86c1', weight: 1, opacity: 0.35, fillOpacity: 0.03 } }).addTo(group);
        break;
      case 'track':
        L.geoJSON(f, { interactive: false, style: { color: '#5b2c83', weight: 3, opacity: 0.7 } }).addTo(group);
        break;
      case 'crime':
        drawn.crime = L.circleMarker([c[1], c[0]], { radius: 9, color: '#922b21', weight: 3, fillColor: '#e74c3c', fillOpacity: 0.95 })
          .bindTooltip(`Crime ${p.crime_ref ?? ''} ${p.crime_type ?? ''}<br>${fmtTime(p.crime_from ?? p.from)} – ${fmtTime(p.crime_to ?? p.to)}`)
          .addTo(group);
        break;
      case 'position': {
        const inWindow = p.in_window !== false;
        const marker = L.circleMarker([c[1], c[0]], {
          radius: 5, color: inWindow ? '#5b2c83' : '#7f8c8d', weight: 2, fillColor: inWindow ? '#f5b041' : '#fff', fillOpacity: 1,
        }).bindTooltip(positionText(p)).addTo(group);
        if (p.label) drawn.positions.set(p.label, marker);
        if (inWindow) focus.extend([c[1], c[0]]);
        labels.push({ lat: c[1], lon: c[0], label: p.label });
        break;
      }
      default:
        L.geoJSON(f).addTo(group);
    }
  }
  const bounds = focus.isValid() ? focus : group.getBounds();
  if (bounds.isValid()) map.fitBounds(bounds.pad(0.3), { maxZoom: 18, animate: false });
  addLabels(map, group, labels);
  return drawn;
}

/** Brings `marker` into view at street zoom at least and opens its tooltip (the keyboard's way
 * to what a pointer finds by hovering). */
export function showMarker(map, marker) {
  if (!marker) return;
  map.setView(marker.getLatLng(), Math.max(map.getZoom(), 17), { animate: false });
  marker.openTooltip();
}

/** A marker for the playback head. */
export function headMarker() {
  return L.circleMarker([0, 0], { radius: 9, color: '#000', weight: 3, fillColor: '#f1c40f', fillOpacity: 1, interactive: false });
}
