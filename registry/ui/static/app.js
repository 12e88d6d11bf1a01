// The app's entry point: theme, account controls, and one view per URL.
import { startTheme } from './theme.js';
import { startAccount, showAccount } from './account.js';
import { sessionEvents } from './session.js';
import { parseRoute, startRouter } from './router.js';
import { setState, showError, breadcrumb, heading, takeFlash } from './views/common.js';
import { h, replace } from './dom.js';
import { renderRepositories } from './views/repositories.js';
import { renderTags } from './views/tags.js';
import { renderManifest } from './views/manifest.js';

const VIEWS = {
  repositories: renderRepositories,
  tags: renderTags,
  manifest: renderManifest,
  notfound: renderNotFound,
};

let current = null; // the AbortController of the view on screen
let first = true;

async function render() {
  if (current) current.abort(); // stops the old view's requests and lazy loading
  current = new AbortController();
  const { signal } = current;
  const main = document.getElementById('view');
  const route = parseRoute(location);
  main.dataset.view = route.view;
  setState(main, 'loading');
  replace(main, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  const flash = takeFlash();
  try {
    await VIEWS[route.view]({ main, route, signal });
  } catch (err) {
    if (!signal.aborted) showError(main, err);
  }
  if (flash && !signal.aborted) main.prepend(h('p', { class: 'ok', role: 'status' }, flash));
  if (!first && !signal.aborted) {
    const h1 = main.querySelector('h1');
    if (h1) h1.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
  first = false;
}

function renderNotFound({ main }) {
  breadcrumb(null, { label: 'Not found', href: location.pathname });
  replace(main, heading('Not found'), h('div', { role: 'alert', class: 'error' }, 'This address names no repository, tag or digest.'));
  setState(main, 'ready');
}

/** Anything that escapes a view still shows up as a message, never a blank page. */
function showUnexpected(err) {
  if (err && err.name === 'AbortError') return;
  const notice = document.getElementById('notice');
  notice.textContent = `Something went wrong: ${(err && err.message) || err}`;
  notice.hidden = false;
}

window.addEventListener('unhandledrejection', (event) => showUnexpected(event.reason));
window.addEventListener('error', (event) => showUnexpected(event.error || event.message));

startTheme();
startAccount();
// Whoever changes the session forgets the old tokens first (api.js, account.js).
sessionEvents.addEventListener('change', (event) => {
  showAccount();
  const notice = document.getElementById('notice');
  notice.textContent = (event.detail && event.detail.reason) || '';
  notice.hidden = !notice.textContent;
  render(); // what may be seen depends on who is asking
});
startRouter(render);
