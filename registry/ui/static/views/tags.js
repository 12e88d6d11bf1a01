// The tags of one repository. The names come in one request and render at once; each
// row's details (digest, type, size, platforms, created) are fetched only when the row
// scrolls into view, a few at a time, so a repository with hundreds of tags stays fast.
import { h, replace, table } from '../dom.js';
import { digestEl, formatCount, mediaTypeEl, parseTime, sizeEl, timeEl } from '../format.js';
import { Limiter } from '../limiter.js';
import { permits } from '../api.js';
import { listTags, tagSummary, deleteManifest } from '../registry.js';
import { confirmDialog } from '../dialogs.js';
import { digestUrl, setQuery, tagUrl } from '../router.js';
import { breadcrumb, errorBox, heading, setState } from './common.js';

const CONCURRENCY = 6; // a browser's connections per host over HTTP/1.1
const collator = new Intl.Collator(undefined, { numeric: true });
const FIELDS = ['digest', 'mediaType', 'size', 'platforms', 'created'];

export async function renderTags({ main, route, signal }) {
  const { name } = route;
  breadcrumb(name);
  const tags = await listTags(name, signal);
  // Asked only once the tags could be read, so a refused reader makes one request, not two.
  const canDelete = await permits(`repository:${name}`, 'delete').catch(() => false);
  const state = {
    name, signal, canDelete,
    tags: tags.slice(),
    rows: new Map(),
    summaries: new Map(), // tag → Promise<summary>
    limiter: new Limiter(CONCURRENCY),
    sort: route.params.get('sort') === 'newest' ? 'newest' : 'name',
    filter: route.params.get('q') || '',
  };
  const ui = buildSkeleton(state);
  replace(main, heading(name, h('span', { class: 'subtitle' }, ' tags')), ui.toolbar, ui.status, ui.tableBox);
  state.observer = new IntersectionObserver((entries) => onVisible(state, entries), { rootMargin: '300px 0px' });
  signal.addEventListener('abort', () => state.observer.disconnect());
  buildRows(state, ui);
  bindToolbar(state, ui);
  applyFilter(state, ui);
  setState(main, 'ready');
  if (state.sort === 'newest') sortNewest(state, ui);
}

function buildSkeleton(state) {
  const filter = h('input', {
    id: 'tag-filter', type: 'search', placeholder: 'Filter tags', autocomplete: 'off', spellcheck: 'false',
  });
  filter.value = state.filter;
  const sort = h('select', { id: 'tag-sort' },
    h('option', { value: 'name' }, 'Name'),
    h('option', { value: 'newest' }, 'Newest first'));
  sort.value = state.sort;
  const count = h('span', { id: 'tag-count', role: 'status' });
  const toolbar = h('div', { class: 'toolbar' },
    h('label', { for: 'tag-filter' }, 'Filter'), filter,
    h('label', { for: 'tag-sort' }, 'Sort'), sort, count);
  const headers = ['Tag', 'Digest', 'Type', 'Size', 'Platforms', 'Created'];
  if (state.canDelete) headers.push(h('span', { class: 'visually-hidden' }, 'Actions'));
  const tableBox = table('tags', headers, [], 'Tags');
  return { filter, sort, count, toolbar, status: h('div', { class: 'status', 'aria-live': 'polite' }), tableBox };
}

function bindToolbar(state, ui) {
  ui.filter.addEventListener('input', () => {
    state.filter = ui.filter.value;
    remember(state);
    applyFilter(state, ui);
  });
  ui.sort.addEventListener('change', () => {
    state.sort = ui.sort.value;
    remember(state);
    if (state.sort === 'newest') sortNewest(state, ui);
    else reorder(state, ui, sortedByName(state.tags));
  });
  ui.tableBox.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action="delete-tag"]');
    if (button) deleteTag(state, ui, button.closest('tr').dataset.tag);
  });
}

function remember(state) {
  setQuery({ sort: state.sort === 'newest' ? 'newest' : '', q: state.filter });
}

function sortedByName(tags) {
  return tags.slice().sort(collator.compare);
}

/** One cheap row per tag; the detail cells are placeholders until the row is seen. */
function buildRows(state, ui) {
  const frag = document.createDocumentFragment();
  for (const tag of sortedByName(state.tags)) {
    const row = h('tr', { dataset: { tag } }, h('th', { scope: 'row' }, h('a', { href: tagUrl(state.name, tag) }, tag)));
    for (const field of FIELDS) row.append(h('td', { dataset: { field }, class: 'pending' }, '…'));
    if (state.canDelete) {
      row.append(h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'small danger', dataset: { action: 'delete-tag' }, 'aria-label': `Delete tag ${tag}` }, 'Delete')));
    }
    state.rows.set(tag, row);
    frag.append(row);
  }
  ui.tableBox.querySelector('tbody').append(frag);
  for (const row of state.rows.values()) state.observer.observe(row);
}

function onVisible(state, entries) {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    state.observer.unobserve(entry.target);
    fill(state, entry.target.dataset.tag);
  }
}

/** The summary of a tag, fetched once through the limiter. */
function summaryOf(state, tag) {
  if (!state.summaries.has(tag)) {
    const pending = state.limiter.run(() => {
      if (state.signal.aborted) throw new DOMException('aborted', 'AbortError');
      return tagSummary(state.name, tag, state.signal);
    });
    pending.catch(() => {});
    state.summaries.set(tag, pending);
  }
  return state.summaries.get(tag);
}

async function fill(state, tag) {
  const row = state.rows.get(tag);
  if (!row || row.dataset.loaded) return;
  row.dataset.loaded = 'loading';
  try {
    const s = await summaryOf(state, tag);
    setCell(row, 'digest', h('a', { href: digestUrl(state.name, s.digest) }, digestEl(s.digest)));
    setCell(row, 'mediaType', mediaTypeEl(s.mediaType));
    setCell(row, 'size', sizeEl(s.size));
    setCell(row, 'platforms', s.platforms.length ? s.platforms.join(', ') : h('span', { class: 'muted' }, s.kind === 'artifact' ? 'artifact' : '—'));
    setCell(row, 'created', timeEl(parseTime(s.created)));
    row.dataset.loaded = 'true';
  } catch (err) {
    if (err.name === 'AbortError') return;
    for (const field of FIELDS) setCell(row, field, '');
    setCell(row, 'digest', h('span', { class: 'cell-error', title: err.message }, `error: ${err.message}`));
    row.dataset.loaded = 'error';
  }
}

function setCell(row, field, content) {
  const cell = row.querySelector(`td[data-field="${field}"]`);
  cell.classList.remove('pending');
  replace(cell, content);
}

function applyFilter(state, ui) {
  const needle = state.filter.trim().toLowerCase();
  let shown = 0;
  for (const [tag, row] of state.rows) {
    const match = !needle || tag.toLowerCase().includes(needle);
    row.hidden = !match;
    if (match) shown += 1;
  }
  const total = state.rows.size;
  const noun = total === 1 ? 'tag' : 'tags';
  ui.count.textContent = needle ? `${formatCount(shown)} of ${formatCount(total)} ${noun}` : `${formatCount(total)} ${noun}`;
}

function reorder(state, ui, order) {
  const frag = document.createDocumentFragment();
  for (const tag of order) {
    const row = state.rows.get(tag);
    if (row) frag.append(row);
  }
  ui.tableBox.querySelector('tbody').append(frag);
}

/** Newest first needs every tag's created time: load them all, then sort. */
async function sortNewest(state, ui) {
  const tags = [...state.rows.keys()];
  let done = 0;
  const progress = h('p', { class: 'loading', id: 'tag-progress' });
  replace(ui.status, progress);
  const times = new Map();
  await Promise.all(tags.map(async (tag) => {
    try {
      const s = await summaryOf(state, tag);
      times.set(tag, parseTime(s.created));
    } catch {
      times.set(tag, null); // sorts last
    }
    done += 1;
    progress.textContent = `Loading created times: ${done} of ${tags.length}`;
    fill(state, tag);
  }));
  if (state.signal.aborted || state.sort !== 'newest') return;
  replace(ui.status);
  reorder(state, ui, tags.sort((a, b) => {
    const ta = times.get(a);
    const tb = times.get(b);
    if (ta && tb && ta.getTime() !== tb.getTime()) return tb - ta;
    if (Boolean(ta) !== Boolean(tb)) return ta ? -1 : 1;
    return collator.compare(a, b);
  }));
}

async function deleteTag(state, ui, tag) {
  let facts = null;
  try {
    facts = await summaryOf(state, tag);
  } catch {
    facts = null;
  }
  const body = [h('p', null, 'Delete the tag ', h('code', null, tag), ' from ', h('code', null, state.name), '?')];
  if (facts) {
    body.push(h('p', null, 'The manifest ', h('code', { class: 'digest' }, facts.digest),
      ' stays and can still be pulled by digest or by its other tags.'));
  }
  if (!(await confirmDialog(`Delete tag ${tag}?`, body, 'Delete tag'))) return;
  try {
    await deleteManifest(state.name, tag);
  } catch (err) {
    replace(ui.status, errorBox(err));
    return;
  }
  const row = state.rows.get(tag);
  state.rows.delete(tag);
  state.tags = state.tags.filter((t) => t !== tag);
  if (row) row.remove();
  applyFilter(state, ui);
  replace(ui.status, h('p', { class: 'ok', role: 'status' }, `Tag ${tag} deleted.`));
  ui.filter.focus();
}
