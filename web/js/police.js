// The police page: upload a crime batch (CSV) and read its validation report; the force's
// batches; the confirmed hits on them, each with its evidence map and a CSV export per batch.

import { get, request, qs } from './api.js';
import { h, fill, table, message, field, fmtTime, download, toast } from './ui.js';
import { loadHits, hitRow, hitDetail, HIT_COLUMNS, NO_HITS_API } from './hits.js';

export async function policePage(root, me) {
  const file = h('input', { type: 'file', name: 'batch', accept: '.csv,text/csv', required: true });
  const report = h('div', { 'data-testid': 'report' });
  const batches = h('section', { class: 'card' });
  const hits = h('section', { class: 'card' });
  const hitBox = h('section', { class: 'card hit-box' });

  const upload = async (ev) => {
    ev.preventDefault();
    const f = file.files[0];
    if (!f) return file.reportValidity();
    fill(report, message(`Uploading ${f.name}…`));
    try {
      const r = await request('/v1/crimes/batches', { method: 'POST', body: await f.text(), type: 'text/csv' });
      fill(report, validationReport(r, f.name));
      toast(`Batch ${r.batch_id}: ${r.status}`);
      refresh();
    } catch (e) {
      fill(report, message(e.message, 'error'));
    }
  };

  fill(root,
    h('section', { class: 'card' },
      h('h2', {}, `Crime batches · ${me.force}`),
      h('form', { class: 'inline', onsubmit: upload },
        field('Crime batch (CSV)', file), h('button', { type: 'submit' }, 'Upload and validate')),
      report),
    batches, hits, hitBox);

  async function refresh() {
    try {
      const list = await get('/v1/crimes/batches');
      fill(batches, h('h2', {}, `Batches (${list.length})`), list.length ? table(
        ['batch', 'status', 'rows', 'imported', 'errors', 'uploaded', 'by', 'hits', ''],
        list.map((b) => h('tr', {}, h('td', {}, b.batch_id), h('td', {}, h('span', { class: `badge ${b.status}` }, b.status)),
          h('td', { class: 'num' }, b.rows), h('td', { class: 'num' }, b.imported), h('td', { class: 'num' }, b.errors?.length ?? 0),
          h('td', {}, fmtTime(b.uploaded_at)), h('td', {}, b.uploaded_by ?? ''), h('td', { class: 'num' }, b.hits ?? 0),
          h('td', {}, h('button', { type: 'button', class: 'secondary', onclick: () => exportHits(b.batch_id) }, 'Hits CSV')))))
        : message('No batches uploaded yet.'));
    } catch (e) {
      fill(batches, h('h2', {}, 'Batches'), message(e.status === 404 ? 'Crime batches are not available on this server yet.' : e.message, 'error'));
    }
    try {
      const list = await loadHits({ state: 'confirmed' });
      if (list === null) return fill(hits, h('h2', {}, 'Confirmed hits'), message(NO_HITS_API));
      const open = (hit) => hitDetail(hitBox, hit);
      fill(hits, h('h2', {}, `Confirmed hits (${list.length})`),
        list.length ? table(HIT_COLUMNS, list.map((hit) => hitRow(hit, open)), { class: 'hit-list', 'data-testid': 'confirmed-hits' })
          : message('No confirmed hits on your force\'s crimes yet (the hub reviews every hit first).'));
    } catch (e) {
      fill(hits, h('h2', {}, 'Confirmed hits'), message(e.message, 'error'));
    }
  }
  refresh();
}

function validationReport(r, name) {
  const kind = { successful: 'ok', partial: 'info', failed: 'error' }[r.status] ?? 'info';
  return h('div', { class: 'report' },
    message(`${name}: batch ${r.batch_id} ${r.status} — ${r.imported} of ${r.rows} rows imported, ${r.errors.length} rejected.`, kind),
    r.errors.length ? table(['line', 'code', 'field', 'problem', 'what to do'],
      r.errors.map((e) => h('tr', {}, h('td', { class: 'num' }, e.line), h('td', {}, h('code', {}, e.code)),
        h('td', {}, e.field ?? ''), h('td', {}, e.message), h('td', {}, e.action ?? ''))),
      { class: 'errors', 'data-testid': 'batch-errors' }) : '');
}

async function exportHits(batch) {
  const blob = await request(`/v1/crimes/batches/${encodeURIComponent(batch)}/hits.csv${qs({})}`, { as: 'blob' });
  download(blob, `${batch}-hits.csv`);
}
