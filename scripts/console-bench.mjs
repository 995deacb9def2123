// Measures the web console (issue 17's targets; BENCHMARKS.md, "Session 12: the console"):
// - the first load of the hub's page after sign-in, cold (a fresh browser context each run: no
//   cache), from navigation to the queue caught up with the alert stream and drawn (the page's
//   `queue-ready` mark), and the bytes transferred for it;
// - drawing a 31-day trail of 45,000 positions (one fix a minute) with the console's own
//   map code as the practitioner's view draws it (line, dots, labels), from the data in hand to
//   the frame after it is drawn.
// Usage: TAGSTREAM_PROFILE=release node scripts/console-bench.mjs [--runs N] [--console-dir DIR]
// (release binaries: cargo build --release --bins; Chromium as for the browser tests;
// --console-dir serves another copy of web/, e.g. an earlier commit's, to compare one build's
// server with two consoles).

import { startServer, startBrowser } from '../tests/browser/harness.mjs';

const option = (name) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const runs = Number(option('--runs')) || 5;
const consoleDir = option('--console-dir');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = await startServer({ serveArgs: ['--tile-archive', 'fixtures/basemap/demo-streets.mbtiles',
  ...(consoleDir ? ['--console-dir', consoleDir] : [])] });
const chrome = await startBrowser();
try {
  server.streamTags(); // a queue to load: the simulated population's alerts
  // Measured once the server has derived them all (idle), as a centre's server is between bursts.
  for (let last = '', i = 0; i < 100; i++) {
    const now = (await server.api('hub', '/v1/alerts/export')).body;
    if (now && now === last) break;
    last = now;
    await new Promise((r) => setTimeout(r, 500));
  }
  const loads = [];
  for (let i = 0; i < runs; i++) {
    const context = await chrome.browser.newContext({ viewport: { width: 1366, height: 768 } });
    const page = await context.newPage();
    await page.addInitScript((token) => {
      sessionStorage.setItem('tagstream.token', token);
      sessionStorage.setItem('tagstream.purpose', 'console benchmark');
    }, server.tokens.hub);
    await page.goto(server.url);
    // The page marks when its queue, caught up with the stream, is drawn (User Timing).
    await page.waitForFunction(() => performance.getEntriesByName('queue-ready').length > 0);
    loads.push(await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const resources = performance.getEntriesByType('resource');
      return {
        ready_ms: performance.getEntriesByName('queue-ready')[0].startTime,
        dom_ms: nav.domContentLoadedEventEnd,
        alerts: document.querySelectorAll('[data-testid=alerts] tbody tr').length,
        bytes: nav.transferSize + resources.reduce((n, r) => n + r.transferSize, 0),
        requests: 1 + resources.length,
      };
    }));
    await context.close();
  }
  const draws = [];
  const context = await chrome.browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  await page.goto(server.url);
  for (let i = 0; i < Math.max(3, Math.ceil(runs / 2)); i++) {
    draws.push(await page.evaluate(async () => {
      const { createMap, drawTrail, fit, addLabels } = await import('/console/js/map.js');
      const el = document.createElement('div');
      el.style.cssText = 'width:1200px;height:600px';
      document.body.append(el);
      const { map, overlay } = await createMap(el);
      const start = Date.parse('2026-03-01T00:00:00Z');
      const features = [];
      let lat = 51.4545;
      let lon = -2.5879;
      for (let k = 0; k < 45_000; k++) {
        lat += Math.sin(k / 97) * 0.0004;
        lon += Math.cos(k / 89) * 0.0005;
        features.push({ type: 'Feature', geometry: { type: 'Point', coordinates: [lon, lat] }, properties: {
          kind: 'position', t: new Date(start + k * 60_000).toISOString(), label: `A${k + 1}`,
          precision_m: 10, source: 'gps', gap_before: false } });
      }
      const fc = { type: 'FeatureCollection', features };
      const t0 = performance.now();
      const positions = drawTrail(overlay, fc, { map });
      addLabels(map, overlay, positions.map((q) => ({ ...q, label: q.props.label })));
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      const ms = performance.now() - t0;
      map.remove();
      el.remove();
      return ms;
    }));
  }
  await context.close();
  console.log(JSON.stringify({
    first_load_ms: { median: Math.round(median(loads.map((l) => l.ready_ms))), all: loads.map((l) => Math.round(l.ready_ms)) },
    dom_content_loaded_ms: Math.round(median(loads.map((l) => l.dom_ms))),
    queue_rows: median(loads.map((l) => l.alerts)),
    first_load_bytes: median(loads.map((l) => l.bytes)),
    first_load_requests: median(loads.map((l) => l.requests)),
    trail_45000_draw_ms: { median: Math.round(median(draws)), all: draws.map(Math.round) },
  }, null, 1));
} finally {
  await chrome.close();
  server.stop();
}
