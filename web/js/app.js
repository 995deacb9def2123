// The console's entry point: sign-in with a token (kept in sessionStorage), the caller's role from
// GET /v1/me, the stated purpose of access, and the page for that role. The API enforces what each
// role may see; the console only chooses what to offer.

import { get, session, ApiError } from './api.js';
import { fill, message } from './ui.js';

// Each role's page loads once the role is known: a first load carries one page's modules, not
// all three (index.html preloads the hub's, the page a monitoring centre opens all day).
const hubPage = () => import('./hub.js').then((m) => m.hubPage);
const PAGES = {
  admin: hubPage,
  hub: hubPage,
  police: () => import('./police.js').then((m) => m.policePage),
  practitioner: () => import('./practitioner.js').then((m) => m.practitionerPage),
};
const DEFAULT_PURPOSE = {
  admin: 'monitoring centre alert triage',
  hub: 'monitoring centre alert triage',
  police: 'crime mapping hit review',
  practitioner: 'case supervision review',
};

const $ = (id) => document.getElementById(id);
let stopPage = null;

function showSignIn(error) {
  stopPage?.();
  stopPage = null;
  $('session').hidden = true;
  $('signin').hidden = false;
  fill($('page'));
  $('signin-error').textContent = error || '';
  $('token').value = '';
  $('token').focus();
}

async function start() {
  let me;
  try {
    me = await get('/v1/me');
  } catch (e) {
    session.clear();
    showSignIn(e instanceof ApiError && e.status === 401 ? 'That token was not accepted.' : e.message);
    return;
  }
  const loadPage = PAGES[me.role];
  if (!loadPage) {
    showSignIn(`The console has no page for the role “${me.role}”.`);
    return;
  }
  if (!session.purpose) session.purpose = DEFAULT_PURPOSE[me.role];
  $('signin').hidden = true;
  $('session').hidden = false;
  $('purpose').value = session.purpose;
  const scope = me.force ? ` · ${me.force}` : me.caseload ? ` · caseload of ${me.caseload.length}` : '';
  $('who').textContent = `${me.user} (${me.role}${scope})`;
  document.body.dataset.role = me.role;
  const root = $('page');
  fill(root);
  try {
    const page = await loadPage();
    stopPage = await page(root, me);
  } catch (e) {
    root.append(message(e.message, 'error'));
  }
}

$('signin-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  session.token = $('token').value.trim();
  start();
});
$('sign-out').addEventListener('click', () => {
  session.clear();
  delete document.body.dataset.role;
  showSignIn();
});
$('purpose').addEventListener('change', () => {
  const v = $('purpose').value.trim();
  if (v) session.purpose = v;
  else $('purpose').value = session.purpose;
});

if (session.token) start();
else showSignIn();
