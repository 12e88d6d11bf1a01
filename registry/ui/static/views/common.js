// Pieces every view uses: the breadcrumb, the error box, the view's state and copy buttons.
import { h, replace } from '../dom.js';
import { BASE, repositoriesUrl, tagsUrl } from '../router.js';
import { currentSession } from '../session.js';

/** Sets <main>'s data-view/data-state, which the browser tests wait on. */
export function setState(main, state) {
  main.dataset.state = state;
  main.setAttribute('aria-busy', state === 'loading' ? 'true' : 'false');
}

/**
 * The breadcrumb: Repositories › each namespace of the name (a filtered repository list)
 * › the repository › extra items. The last item is the current page.
 */
export function breadcrumb(name, ...extra) {
  const items = [{ label: 'Repositories', href: BASE }];
  if (name) {
    const parts = name.split('/');
    parts.slice(0, -1).forEach((part, i) => {
      items.push({ label: part, href: repositoriesUrl(`${parts.slice(0, i + 1).join('/')}/`) });
    });
    items.push({ label: parts[parts.length - 1], href: tagsUrl(name) });
  }
  items.push(...extra);
  const nav = document.getElementById('breadcrumb');
  const list = h('ol');
  items.forEach((item, i) => {
    const last = i === items.length - 1;
    const link = h('a', { href: item.href, 'aria-current': last ? 'page' : null, title: item.title }, item.label);
    list.append(h('li', null, link));
  });
  replace(nav, list);
}

/** The error box: the API's message (and code); a hint to sign in when that could help. */
export function errorBox(err) {
  const message = err && err.message ? err.message : String(err);
  const box = h('div', { role: 'alert', class: 'error' }, h('strong', null, 'Error: '), message);
  if (err && err.code && err.code !== 'NETWORK') box.append(' ', h('code', null, `(${err.code})`));
  if (err && err.status === 401 && !currentSession()) {
    const signIn = h('button', { type: 'button', class: 'small' }, 'Sign in');
    signIn.addEventListener('click', () => document.getElementById('signin').click());
    box.append(h('p', null, 'Sign in to see more. ', signIn));
  }
  return box;
}

/** Shows an error as the view's content and marks the view failed. */
export function showError(main, err) {
  if (err && err.name === 'AbortError') return;
  replace(main, errorBox(err));
  setState(main, 'error');
}

/** A heading that takes focus after navigation, so keyboard and screen-reader users land on it. */
export function heading(text, ...extra) {
  return h('h1', { tabindex: '-1' }, text, ...extra);
}

/** A button that copies `text` to the clipboard and says so. */
export function copyButton(text, label = 'Copy') {
  const button = h('button', { type: 'button', class: 'copy', dataset: { copy: text }, 'aria-label': `${label}: ${text.slice(0, 80)}` }, 'Copy');
  button.addEventListener('click', async () => {
    const ok = await copyText(text);
    button.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => {
      button.textContent = 'Copy';
    }, 1500);
  });
  return button;
}

/** The Clipboard API needs a secure context; over plain HTTP fall back to a hidden textarea. */
async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall back below
  }
  const area = h('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true' });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

/** A "Loading…" line for the view. */
export function loading(text = 'Loading…') {
  return h('p', { class: 'loading', role: 'status' }, text);
}

let flash = null;

/** A message for the next view (e.g. "deleted") after an action that navigates away. */
export function setFlash(text) {
  flash = text;
}

export function takeFlash() {
  const text = flash;
  flash = null;
  return text;
}
