// The console's street basemap from the local tile archive, in headless Chromium against the real
// server started with --tile-archive fixtures/basemap/demo-streets.mbtiles: signed in as the hub,
// a console map over central Bristol at street zoom (and deeper, where the archive's deepest tiles
// are enlarged) shows 256-pixel tiles from /console/tiles/, nothing is loaded from any other
// origin, and the map carries the "synthetic demo streets" notice for people and screen readers.
// Screenshot: target/browser-artifacts/basemap-street-zoom.png.
// Run: node --test tests/browser/basemap.test.mjs (after cargo build --bins).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { inflateSync } from 'node:zlib';
import { startServer, startBrowser, newPage, signIn, screenshot, DEMO_STREETS } from './harness.mjs';

const BRISTOL = [51.4545, -2.5879];

/** RGBA pixels of a PNG as Chromium writes screenshots (8-bit RGB or RGBA, not interlaced). */
function decodePng(buf) {
  let pos = 8;
  let width = 0; let height = 0; let channels = 0;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4);
      assert.equal(data[8], 8, 'bit depth');
      channels = { 2: 3, 6: 4 }[data[9]];
      assert.ok(channels && data[12] === 0, 'RGB(A), not interlaced');
    } else if (type === 'IDAT') idat.push(data);
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = Buffer.alloc(width * height * 4);
  let prev = Buffer.alloc(stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = Buffer.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? line[i - channels] : 0;
      const b = prev[i];
      const c = i >= channels ? prev[i - channels] : 0;
      const p = a + b - c;
      const pa = Math.abs(p - a); const pb = Math.abs(p - b); const pc = Math.abs(p - c);
      const paeth = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      line[i] = (line[i] + [0, a, b, (a + b) >> 1, paeth][filter]) & 0xff;
    }
    for (let x = 0; x < width; x++) {
      for (let k = 0; k < 4; k++) out[(y * width + x) * 4 + k] = k < channels ? line[x * channels + k] : 255;
    }
    prev = line;
  }
  return { width, height, pixels: out };
}

/** Share of the pixels that are pure white (the streets; the force-area fill is #f4f1ea). */
function whiteShare({ pixels }) {
  let white = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    if (pixels[i] === 255 && pixels[i + 1] === 255 && pixels[i + 2] === 255) white++;
  }
  return white / (pixels.length / 4);
}

describe('street basemap from the local tile archive', { concurrency: false }, () => {
  let server;
  let chrome;

  before(async () => {
    server = await startServer({ serveArgs: ['--tile-archive', DEMO_STREETS] });
    chrome = await startBrowser();
  });
  after(async () => {
    await chrome?.close();
    server?.stop();
  });

  it('hub: a map at street zoom shows local street tiles and says they are synthetic', async () => {
    const errors = [];
    const page = await newPage(chrome.browser, errors);
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    try {
      await signIn(page, server.url, server.tokens.hub, 'hub');

      // A console map (the module every view uses), laid over the page at laptop size, moved to
      // central Bristol at street zoom; resolves when the visible tiles have loaded.
      const show = (zoom) => page.evaluate(async ({ centre, zoom }) => {
        const { createMap, L } = await import('/console/js/map.js');
        let m = window.basemapTest;
        if (!m) {
          const el = document.createElement('div');
          el.id = 'basemap-test';
          el.style.cssText = 'position:fixed;inset:40px;z-index:10000;border:1px solid #333';
          document.body.append(el);
          m = window.basemapTest = await createMap(el);
        }
        let tiles;
        m.map.eachLayer((l) => { if (l instanceof L.TileLayer) tiles = l; });
        if (!tiles) return 'no tile layer';
        const loaded = new Promise((resolve) => tiles.once('load', resolve));
        m.map.setView(centre, zoom, { animate: false });
        await Promise.race([loaded, new Promise((r) => setTimeout(r, 10000))]);
        return 'ok';
      }, { centre: BRISTOL, zoom });
      const tiles = () => page.$$eval('#basemap-test img.leaflet-tile', (imgs) => imgs.map((i) => ({
        src: new URL(i.src).pathname, origin: new URL(i.src).origin,
        loaded: i.complete && i.classList.contains('leaflet-tile-loaded'), width: i.naturalWidth,
      })));

      assert.equal(await show(16), 'ok');
      await page.locator('#basemap-test img.leaflet-tile-loaded').first().waitFor();
      const street = await tiles();
      assert.ok(street.length >= 4, `tiles shown: ${JSON.stringify(street)}`);
      for (const t of street) {
        assert.equal(t.origin, server.url, t.src);
        assert.match(t.src, /^\/console\/tiles\/16\/\d+\/\d+\.png$/);
        assert.ok(t.loaded, `${t.src} did not load`);
        assert.equal(t.width, 256, t.src);
      }
      const notice = page.getByRole('note').filter({ hasText: 'Synthetic demo streets — not real, not evidence' });
      assert.ok(await notice.isVisible(), 'the synthetic notice is on the map');
      assert.match(await page.locator('#basemap-test .leaflet-control-attribution').textContent(), /not evidence/);
      await screenshot(page, 'basemap-street-zoom');
      // The streets are on screen, not hidden under another layer: the middle of the map (clear
      // of its controls) is partly white street.
      const middle = decodePng(await page.screenshot({ clip: { x: 300, y: 200, width: 700, height: 350 } }));
      const streets = whiteShare(middle);
      assert.ok(streets > 0.03, `white street pixels in the middle of the map: ${(streets * 100).toFixed(2)}%`);

      // Deeper than the archive (16): its tiles are enlarged, none deeper is asked for.
      assert.equal(await show(18), 'ok');
      const deep = (await tiles()).filter((t) => t.loaded);
      assert.ok(deep.length > 0);
      for (const t of deep) assert.match(t.src, /^\/console\/tiles\/16\//);
      await screenshot(page, 'basemap-overzoom');

      const tileRequests = requests.filter((u) => new URL(u).pathname.startsWith('/console/tiles/'));
      assert.ok(tileRequests.length >= street.length);
      const elsewhere = requests.filter((u) => !u.startsWith(server.url) && !/^(data|blob):/.test(u));
      assert.deepEqual(elsewhere, [], 'requests to other origins');
    } finally {
      await page.context().close();
    }
    assert.deepEqual(errors, [], 'the page logged errors, failed requests or loaded something from outside');
  });
});
