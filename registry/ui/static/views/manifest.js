// One manifest: an index's platforms, an image's layers and configuration, an artifact's
// files; annotations, referrers, raw JSON, pull commands and (when permitted) deletion.
import { h, replace, dl } from '../dom.js';
import { digestEl, formatCount, shortDigest, sizeEl } from '../format.js';
import { permits } from '../api.js';
import { Limiter } from '../limiter.js';
import { artifactTypeOf, imageSize, isImageConfig, EMPTY_CONFIG } from '../manifests.js';
import { getManifest, getConfig, getReferrers, listTags, tagDigest, deleteManifest } from '../registry.js';
import { confirmDialog } from '../dialogs.js';
import { digestUrl, navigate, tagUrl, tagsUrl } from '../router.js';
import { breadcrumb, copyButton, errorBox, heading, setFlash, setState } from './common.js';
import {
  annotationsTable, artifactParts, configPanel, layersTable, platformsTable, rawDetails,
  referrerGroups, section,
} from './manifest-parts.js';

const MAX_RAW_CONFIG = 1024 * 1024;

export async function renderManifest({ main, route, signal }) {
  const { name, ref } = route;
  const byDigest = ref.includes(':');
  crumbs(name, ref, route.params.get('from'));
  const record = await getManifest(name, ref, signal);
  const config = await loadConfig(name, record, signal);
  const title = byDigest ? `${name}@${shortDigest(ref)}` : `${name}:${ref}`;
  const parts = [heading(title), summary(record, config), pullCommands(name, ref, record)];
  parts.push(...body(name, ref, record, config));
  const referrers = section('referrers', 'Referrers', h('p', { class: 'loading' }, 'Loading referrers…'));
  referrers.dataset.state = 'loading';
  const manage = section('manage', 'Tags and management', tagsHere(), h('div', { class: 'manage-actions' }));
  parts.push(referrers, manage, rawDetails('raw-manifest', 'Raw manifest', record.text));
  parts.push(config && config.text.length <= MAX_RAW_CONFIG
    ? rawDetails('raw-config', 'Raw configuration', config.text)
    : h('details', { id: 'raw-config', class: 'raw' }, h('summary', null, 'Raw configuration'), h('pre', null, 'No configuration to show.')));
  replace(main, ...parts);
  setState(main, 'ready');
  // The rest comes after the body is on screen; each part reports its own errors.
  loadReferrers(name, record, referrers, signal);
  loadManagement(name, ref, record, manage, signal);
}

function crumbs(name, ref, from) {
  const extra = [];
  if (from && from !== ref) {
    extra.push({ label: from.includes(':') ? shortDigest(from) : from, href: from.includes(':') ? digestUrl(name, from) : tagUrl(name, from), title: from });
  }
  extra.push(ref.includes(':')
    ? { label: shortDigest(ref), href: digestUrl(name, ref), title: ref }
    : { label: ref, href: tagUrl(name, ref) });
  breadcrumb(name, ...extra);
}

/** The configuration blob when the manifest has one worth showing ({json, text} or null). */
async function loadConfig(name, record, signal) {
  const c = record.manifest.config;
  if (record.kind === 'index' || !c || typeof c.digest !== 'string') return null;
  if (c.mediaType === EMPTY_CONFIG) return null;
  if (!isImageConfig(c.mediaType) && !/json/.test(c.mediaType || '')) return null;
  try {
    return await getConfig(name, c, signal);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    return { json: null, text: '', error: err };
  }
}

function summary(record, config) {
  const kindLabel = { index: 'Index (multi-platform)', image: 'Image', artifact: 'Artifact' }[record.kind];
  const total = record.kind === 'index' ? null : imageSize(record.manifest);
  return h('div', { class: 'summary' }, dl([
    ['Digest', h('span', { class: 'with-copy' }, h('code', { id: 'manifest-digest', class: 'digest-full' }, record.digest), copyButton(record.digest, 'Copy digest'))],
    ['Media type', h('code', { id: 'manifest-media-type' }, record.mediaType)],
    ['Kind', kindLabel],
    ['Manifest size', sizeEl(record.size)],
    ['Total size', total === null ? null : sizeEl(total)],
  ]), config && config.error ? errorBox(config.error) : null);
}

/** docker/podman (and oras for artifacts) commands with this page's real host. */
function pullCommands(name, ref, record) {
  const host = location.host;
  const refs = [];
  if (!ref.includes(':')) refs.push(`${host}/${name}:${ref}`);
  if (record.digest) refs.push(`${host}/${name}@${record.digest}`);
  const tools = record.kind === 'artifact' ? ['oras pull'] : ['docker pull', 'podman pull'];
  const lines = [];
  for (const tool of tools) for (const r of refs) lines.push(`${tool} ${r}`);
  return section('pull', 'Pull', h('ul', { id: 'pull-commands', class: 'commands' },
    lines.map((line) => h('li', null, h('code', null, line), copyButton(line, 'Copy command')))));
}

function body(name, ref, record, config) {
  const { manifest, kind } = record;
  const parts = [];
  if (kind === 'index') parts.push(platformsTable(name, manifest, ref));
  if (kind === 'image') {
    parts.push(layersTable(manifest));
    if (config && config.json) parts.push(configPanel(config.json));
  }
  if (kind === 'artifact') parts.push(artifactParts(manifest, artifactTypeOf(manifest)));
  if (manifest.subject && manifest.subject.digest) {
    parts.push(section('subject', 'Refers to',
      h('a', { href: digestUrl(name, manifest.subject.digest), dataset: { digest: manifest.subject.digest } }, digestEl(manifest.subject.digest))));
  }
  parts.push(annotationsTable(manifest.annotations));
  return parts;
}

async function loadReferrers(name, record, box, signal) {
  const title = box.querySelector('h2');
  try {
    const referrers = record.digest ? await getReferrers(name, record.digest, signal) : [];
    replace(box, title, ...referrerGroups(name, referrers));
    box.dataset.state = 'ready';
  } catch (err) {
    if (err.name === 'AbortError') return;
    replace(box, title, errorBox(err));
    box.dataset.state = 'error';
  }
}

function tagsHere() {
  return h('div', { id: 'tags-here', dataset: { state: 'loading' } }, h('p', { class: 'loading' }, 'Looking for the tags that point here…'));
}

/** Finds the tags pointing at this digest (a HEAD per tag, a few at a time). */
async function findTags(name, digest, signal, onProgress) {
  const tags = await listTags(name, signal).catch((err) => {
    if (err.status === 404) return []; // no tags left in the repository
    throw err;
  });
  const limiter = new Limiter(6);
  let done = 0;
  const hits = [];
  await Promise.all(tags.map((tag) => limiter.run(async () => {
    if (signal.aborted) return;
    const d = await tagDigest(name, tag, signal).catch(() => ''); // an unreadable tag is simply not a match
    if (d === digest) hits.push(tag);
    done += 1;
    onProgress(done, tags.length);
  })));
  return hits.sort();
}

async function loadManagement(name, ref, record, manage, signal) {
  const here = manage.querySelector('#tags-here');
  const actions = manage.querySelector('.manage-actions');
  const canDelete = permits(`repository:${name}`, 'delete').catch(() => false);
  let tags = [];
  try {
    tags = await findTags(name, record.digest, signal, (done, total) => {
      here.firstChild.textContent = `Looking for the tags that point here: ${done} of ${total}`;
    });
    replace(here, tagsHereText(name, ref, tags));
    here.dataset.state = 'ready';
  } catch (err) {
    if (err.name === 'AbortError') return;
    replace(here, errorBox(err));
    here.dataset.state = 'error';
  }
  if (signal.aborted || !(await canDelete)) return;
  const button = h('button', { type: 'button', id: 'delete-manifest', class: 'danger' }, 'Delete manifest…');
  button.addEventListener('click', () => deleteThis(name, record, tags, actions));
  replace(actions, button);
}

function tagsHereText(name, ref, tags) {
  if (tags.length === 0) return h('p', null, 'No tag points at this manifest.');
  return h('p', null, `${tags.length === 1 ? 'Tag' : `${formatCount(tags.length)} tags`} pointing here: `,
    tags.map((t, i) => [i ? ', ' : '', t === ref ? h('strong', null, t) : h('a', { href: tagUrl(name, t) }, t)]));
}

async function deleteThis(name, record, tags, actions) {
  const text = [
    h('p', null, 'Delete the manifest ', h('code', { class: 'digest-full' }, record.digest), ' from ', h('code', null, name), '?'),
    tags.length
      ? h('p', null, `These tags go with it: `, tags.map((t, i) => [i ? ', ' : '', h('strong', null, t)]), '.')
      : h('p', null, 'No tag points at it.'),
  ];
  if (record.kind === 'index') text.push(h('p', null, 'The platform manifests it lists stay until deleted themselves.'));
  if (!(await confirmDialog('Delete manifest?', text, 'Delete manifest'))) return;
  try {
    await deleteManifest(name, record.digest);
  } catch (err) {
    replace(actions, errorBox(err));
    return;
  }
  setFlash(`Manifest ${shortDigest(record.digest)} deleted${tags.length ? ` with ${tags.length === 1 ? 'tag' : 'tags'} ${tags.join(', ')}` : ''}.`);
  navigate(tagsUrl(name), true);
}
