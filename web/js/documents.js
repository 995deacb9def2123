// Documents people hand on (docs/documents.md): a row of download buttons for one document's
// files (PDF, its JSON, its manifest). Each button is busy until its file is saved, so a double
// click downloads once; a status line says what happened. The server builds the same bytes
// every time, and audits each download with the stated purpose.

import { request } from './api.js';
import { h, download } from './ui.js';

/**
 * `files`: [label, path, file name, test id] for each file. `testid` names the row.
 */
export function documentButtons(files, testid) {
  const status = h('span', { class: 'status', role: 'status' });
  const buttons = files.map(([label, path, name, id]) => {
    const button = h('button', { type: 'button', class: 'secondary', 'data-testid': id });
    button.textContent = label;
    button.onclick = async () => {
      if (button.disabled) return;
      button.disabled = true;
      button.setAttribute('aria-busy', 'true');
      status.textContent = `Preparing ${label}…`;
      try {
        download(await request(path, { as: 'blob' }), name);
        status.textContent = `${label} saved.`;
      } catch (e) {
        status.textContent = `${label} not saved: ${e.message}`;
      } finally {
        button.disabled = false;
        button.removeAttribute('aria-busy');
      }
    };
    return button;
  });
  return h('div', { class: 'pack-tools', 'data-testid': testid }, ...buttons, status);
}
