// The repository list: catalog pages through Link headers, a filter box, nested names
// grouped under their namespaces.
import { h, replace, table } from '../dom.js';
import { formatCount } from '../format.js';
import { catalogPage } from '../registry.js';
import { repositoriesUrl, setQuery, tagsUrl } from '../router.js';
import { breadcrumb, errorBox, heading, setState } from './common.js';

export const PAGE_SIZE = 100;

export async function renderRepositories({ main, route, signal }) {
  breadcrumb(null);
  const state = { names: [], next: `/v2/_catalog?n=${PAGE_SIZE}`, filter: route.params.get('q') || '' };
  const ui = buildSkeleton(state);
  await loadPage(state, signal);
  replace(main, heading('Repositories'), ui.toolbar, ui.status, ui.tableBox, ui.more);
  ui.filter.addEventListener('input', () => {
    state.filter = ui.filter.value;
    setQuery({ q: state.filter });
    draw(state, ui);
  });
  ui.moreButton.addEventListener('click', () => loadMore(state, ui, signal, false));
  ui.allButton.addEventListener('click', () => loadMore(state, ui, signal, true));
  draw(state, ui);
  setState(main, 'ready');
}

function buildSkeleton(state) {
  const filter = h('input', {
    id: 'repo-filter', type: 'search', value: state.filter, placeholder: 'Filter by name',
    autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'repo-count',
  });
  filter.value = state.filter;
  const count = h('span', { id: 'repo-count', role: 'status' });
  const toolbar = h('div', { class: 'toolbar' }, h('label', { for: 'repo-filter' }, 'Filter'), filter, count);
  const tableBox = table('repositories', ['Repository'], [], 'Repositories');
  const moreButton = h('button', { type: 'button', id: 'repo-more' }, 'Load more');
  const allButton = h('button', { type: 'button', id: 'repo-all' }, 'Load all');
  const more = h('div', { class: 'more' }, moreButton, allButton);
  return { filter, count, toolbar, status: h('div', { class: 'status' }), tableBox, more, moreButton, allButton };
}

async function loadPage(state, signal) {
  const page = await catalogPage(state.next, signal);
  state.names.push(...page.repositories);
  state.next = page.next;
}

async function loadMore(state, ui, signal, all) {
  ui.moreButton.disabled = true;
  ui.allButton.disabled = true;
  replace(ui.status);
  try {
    do await loadPage(state, signal);
    while (all && state.next && !signal.aborted);
  } catch (err) {
    if (err.name !== 'AbortError') replace(ui.status, errorBox(err));
  }
  ui.moreButton.disabled = false;
  ui.allButton.disabled = false;
  draw(state, ui);
}

function draw(state, ui) {
  const needle = state.filter.trim().toLowerCase();
  const shown = needle ? state.names.filter((n) => n.includes(needle)) : state.names;
  const tbody = ui.tableBox.querySelector('tbody');
  tbody.replaceChildren(treeRows(shown));
  ui.count.textContent = countText(shown.length, state.names.length, Boolean(needle), Boolean(state.next));
  ui.more.hidden = !state.next;
  // Without the #repo-more button the tests (and users) know the list is complete.
  ui.moreButton.hidden = !state.next;
  if (shown.length === 0) {
    tbody.append(h('tr', null, h('td', { class: 'empty' }, needle ? 'No repository matches the filter.' : 'No repositories.')));
  }
}

function countText(shown, loaded, filtered, more) {
  const suffix = more ? ' loaded (more on the server)' : '';
  const noun = loaded === 1 ? 'repository' : 'repositories';
  if (filtered) return `${formatCount(shown)} of ${formatCount(loaded)} ${noun}${suffix} match`;
  return `${formatCount(loaded)} ${noun}${suffix}`;
}

/** Compares names component by component, so "a/b" follows "a" and not "a-x". */
function byPath(a, b) {
  const pa = a.split('/');
  const pb = b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i += 1) {
    if (pa[i] !== pb[i]) return pa[i] < pb[i] ? -1 : 1;
  }
  return pa.length - pb.length;
}

/**
 * Rows for a tree: a namespace row opens each group that is not itself a repository, and
 * each repository is indented by its depth, with its namespace path shown dimmed.
 */
function treeRows(names) {
  const frag = document.createDocumentFragment();
  let open = [];
  for (const name of [...names].sort(byPath)) {
    const parts = name.split('/');
    const parent = parts.slice(0, -1);
    let common = 0;
    while (common < parent.length && common < open.length && parent[common] === open[common]) common += 1;
    for (let depth = common; depth < parent.length; depth += 1) {
      frag.append(groupRow(parent.slice(0, depth + 1), depth));
    }
    frag.append(repoRow(name, parts, parent.length));
    open = parts;
  }
  return frag;
}

function groupRow(path, depth) {
  const prefix = `${path.join('/')}/`;
  const cell = h('th', { scope: 'rowgroup', class: 'tree' },
    h('a', { href: repositoriesUrl(prefix), class: 'namespace', title: `Show only ${prefix}` }, prefix));
  cell.style.setProperty('--depth', depth);
  return h('tr', { class: 'group' }, cell);
}

function repoRow(name, parts, depth) {
  const path = parts.length > 1 ? h('span', { class: 'path' }, `${parts.slice(0, -1).join('/')}/`) : null;
  const link = h('a', { href: tagsUrl(name) }, path, h('span', { class: 'leaf' }, parts[parts.length - 1]));
  const cell = h('td', { class: 'tree' }, link);
  cell.style.setProperty('--depth', depth);
  return h('tr', { dataset: { repo: name } }, cell);
}
