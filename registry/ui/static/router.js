// URLs: /ui/ (repositories, ?q= filter), /ui/<name> (tags), /ui/<name>:<tag> and
// /ui/<name>@<digest> (manifest). Names hold no ':' or '@', so the split is unambiguous.

export const BASE = '/ui/';

/** The route for a location: {view, name, ref, params}. */
export function parseRoute(loc) {
  const params = new URLSearchParams(loc.search);
  if (!loc.pathname.startsWith(BASE)) return { view: 'repositories', params };
  let rest = loc.pathname.slice(BASE.length);
  try {
    rest = decodeURIComponent(rest);
  } catch {
    return { view: 'notfound', params };
  }
  rest = rest.replace(/\/+$/, '');
  if (rest === '') return { view: 'repositories', params };
  const at = rest.indexOf('@');
  if (at >= 0) return manifestRoute(rest.slice(0, at), rest.slice(at + 1), params);
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) return manifestRoute(rest.slice(0, colon), rest.slice(colon + 1), params);
  return valid(rest) ? { view: 'tags', name: rest, params } : { view: 'notfound', params };
}

function manifestRoute(name, ref, params) {
  if (!valid(name) || ref === '' || /[/@\s]/.test(ref)) return { view: 'notfound', params };
  return { view: 'manifest', name, ref, params };
}

// The distribution spec's repository name grammar.
const NAME = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

function valid(name) {
  return NAME.test(name);
}

export const repositoriesUrl = (q) => (q ? `${BASE}?${new URLSearchParams({ q })}` : BASE);
export const tagsUrl = (name) => `${BASE}${name}`;
export const tagUrl = (name, tag) => `${BASE}${name}:${encodeURIComponent(tag)}`;
export const digestUrl = (name, digest) => `${BASE}${name}@${digest}`;

/** Intercepts clicks on same-origin /ui/ links so the page is not reloaded. */
export function startRouter(render) {
  document.addEventListener('click', (event) => {
    const link = event.target.closest && event.target.closest('a[href]');
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || link.target) return;
    const url = new URL(link.href, location.href);
    if (url.origin !== location.origin || !url.pathname.startsWith(BASE)) return;
    event.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener('popstate', () => render());
  navigateHandler = render;
  render();
}

let navigateHandler = () => {};

/** Goes to a URL inside the app (pushes history unless `replace`). */
export function navigate(url, replace = false) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  navigateHandler();
}

/** Updates the query string without a new history entry or a new render (filters, sort). */
export function setQuery(params) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) search.set(k, v);
  const query = search.toString();
  history.replaceState(null, '', location.pathname + (query ? `?${query}` : ''));
}
