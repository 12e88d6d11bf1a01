// The sections of the manifest view, each built from data already fetched.
import { h, table, dl } from '../dom.js';
import { digestEl, formatCount, mediaTypeEl, parseTime, sizeEl, timeEl } from '../format.js';
import { childrenOf, layersOf, layersTotal, platformOf, titleOf } from '../manifests.js';
import { digestUrl } from '../router.js';
import { copyButton } from './common.js';

export function section(id, title, ...content) {
  return h('section', { id, class: 'panel', 'aria-labelledby': `${id}-title` }, h('h2', { id: `${id}-title` }, title), ...content);
}

/** An index's entries, each linking to its own manifest view. */
export function platformsTable(name, manifest, fromRef) {
  const rows = childrenOf(manifest).map((d) => {
    const href = `${digestUrl(name, d.digest)}?${new URLSearchParams({ from: fromRef })}`;
    return h('tr', { dataset: { digest: d.digest } },
      h('th', { scope: 'row' }, h('a', { href }, platformOf(d))),
      h('td', null, h('a', { href, 'aria-label': `Manifest ${d.digest}` }, digestEl(d.digest))),
      h('td', null, mediaTypeEl(d.mediaType)),
      h('td', { class: 'num' }, sizeEl(Number(d.size))));
  });
  return section('platforms-section', `Platforms (${rows.length})`,
    table('platforms', ['Platform', 'Digest', 'Media type', 'Manifest size'], rows, 'Platforms'));
}

/** An image's layers with their sizes and the total. */
export function layersTable(manifest) {
  const layers = layersOf(manifest);
  const rows = layers.map((l, i) => h('tr', { dataset: { digest: l.digest } },
    h('td', { class: 'num' }, String(i + 1)),
    h('td', null, digestEl(l.digest)),
    h('td', null, mediaTypeEl(l.mediaType)),
    h('td', { class: 'num' }, sizeEl(Number(l.size)))));
  const total = h('p', { id: 'layers-total' }, `${formatCount(layers.length)} layers, total `, sizeEl(layersTotal(manifest)));
  return section('layers-section', 'Layers',
    h('details', { open: layers.length <= 20 ? true : null },
      h('summary', null, `${formatCount(layers.length)} layers`),
      table('layers', ['#', 'Digest', 'Media type', 'Size'], rows, 'Layers')),
    total);
}

/** An artifact's type and files (layers named by org.opencontainers.image.title). */
export function artifactParts(manifest, artifactType) {
  const rows = layersOf(manifest).map((l) => h('tr', { dataset: { digest: l.digest } },
    h('th', { scope: 'row' }, titleOf(l) || h('span', { class: 'muted' }, '(untitled)')),
    h('td', null, mediaTypeEl(l.mediaType)),
    h('td', null, digestEl(l.digest)),
    h('td', { class: 'num' }, sizeEl(Number(l.size)))));
  return section('artifact-section', 'Artifact',
    dl([['Artifact type', h('code', { id: 'artifact-type' }, artifactType)]], { class: 'facts' }),
    table('files', ['File', 'Media type', 'Digest', 'Size'], rows, 'Files'));
}

/** Annotations as a key/value table (always present, so its absence is visible too). */
export function annotationsTable(annotations) {
  const entries = annotations && typeof annotations === 'object' ? Object.entries(annotations) : [];
  if (entries.length === 0) {
    return section('annotations-section', 'Annotations', h('p', { id: 'annotations', class: 'muted' }, 'No annotations.'));
  }
  return section('annotations-section', 'Annotations', keyValueTable('annotations', entries, 'Annotations'));
}

function keyValueTable(id, entries, caption) {
  const rows = entries.map(([k, v]) => h('tr', null, h('th', { scope: 'row' }, h('code', null, k)), h('td', { class: 'wrap' }, valueText(v))));
  return table(id, ['Key', 'Value'], rows, caption);
}

function valueText(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The image configuration: what the container runs and how it was built. */
export function configPanel(config) {
  const c = (config && config.config) || {};
  const platform = config || {};
  const list = (items) => (Array.isArray(items) && items.length ? h('ul', { class: 'plain' }, items.map((i) => h('li', null, h('code', null, String(i))))) : none());
  const labels = c.Labels && Object.keys(c.Labels).length ? keyValueTable('labels', Object.entries(c.Labels), 'Labels') : none();
  const ports = c.ExposedPorts ? Object.keys(c.ExposedPorts) : [];
  const facts = dl([
    ['Created', timeEl(parseTime(platform.created)), 'created'],
    ['OS', platform.os ? [platform.os, platform['os.version'] ? ` ${platform['os.version']}` : ''] : none(), 'os'],
    ['Architecture', platform.architecture ? [platform.architecture, platform.variant ? `/${platform.variant}` : ''] : none(), 'architecture'],
    ['User', c.User ? h('code', null, c.User) : none('(root)'), 'user'],
    ['Working directory', c.WorkingDir ? h('code', null, c.WorkingDir) : null, 'workdir'],
    ['Entrypoint', command(c.Entrypoint), 'entrypoint'],
    ['Cmd', command(c.Cmd), 'cmd'],
    ['Exposed ports', list(ports), 'ports'],
    ['Environment', list(c.Env), 'env'],
    ['Labels', labels, 'labels'],
  ], { class: 'facts' });
  return section('config', 'Configuration', facts, historyTable(config && config.history));
}

function command(value) {
  if (Array.isArray(value) && value.length) return h('code', { class: 'wrap' }, JSON.stringify(value));
  if (typeof value === 'string' && value) return h('code', { class: 'wrap' }, value);
  return none();
}

function none(text = '—') {
  return h('span', { class: 'muted' }, text);
}

/** Build history; entries that made no layer are marked (and styled) as empty layers. */
function historyTable(history) {
  const entries = Array.isArray(history) ? history : [];
  const rows = entries.map((e, i) => h('tr', { class: e.empty_layer ? 'empty-layer' : null },
    h('td', { class: 'num' }, String(i + 1)),
    h('td', null, timeEl(parseTime(e.created))),
    h('td', { class: 'wrap' }, h('code', null, e.created_by || ''), e.comment ? h('div', { class: 'muted' }, e.comment) : null),
    h('td', null, e.empty_layer ? h('span', { class: 'badge' }, 'empty layer') : '')));
  return h('details', { class: 'history' },
    h('summary', null, `History (${entries.length} steps)`),
    table('history', ['#', 'Created', 'Created by', 'Layer'], rows, 'History'));
}

/** Referrers grouped by artifactType, each a link to its manifest. */
export function referrerGroups(name, referrers) {
  const groups = new Map();
  for (const r of referrers) {
    const type = r.artifactType || r.mediaType || 'unknown';
    if (!groups.has(type)) groups.set(type, []);
    groups.get(type).push(r);
  }
  if (groups.size === 0) return [h('p', { class: 'muted' }, 'No referrers (signatures, SBOMs, attestations).')];
  return [...groups].map(([type, items]) => h('section', { dataset: { artifactType: type }, class: 'referrer-group' },
    h('h3', null, friendlyType(type), h('code', null, type), ` (${items.length})`),
    h('ul', { class: 'plain' }, items.map((r) => h('li', null,
      h('a', { href: digestUrl(name, r.digest), dataset: { digest: r.digest } }, digestEl(r.digest)),
      ' ', sizeEl(Number(r.size)),
      referrerCreated(r))))));
}

// Common referrer types, named for people; others show their media type alone.
const KNOWN_TYPES = [
  [/cosign.*sig|notary.*signature|\.sig\b|signature/i, 'Signatures'],
  [/spdx|cyclonedx|sbom|syft/i, 'SBOMs'],
  [/in-toto|attestation|provenance|slsa/i, 'Attestations'],
  [/vex/i, 'VEX documents'],
];

function friendlyType(type) {
  const known = KNOWN_TYPES.find(([pattern]) => pattern.test(type));
  return known ? `${known[1]} ` : null;
}

function referrerCreated(r) {
  const created = r.annotations && r.annotations['org.opencontainers.image.created'];
  const time = parseTime(created);
  return time ? [' · ', timeEl(time)] : null;
}

/** Raw JSON, pretty-printed to read; the copy button copies the exact bytes served. */
export function rawDetails(id, title, text) {
  let pretty = text;
  try {
    pretty = JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    // shown as served
  }
  return h('details', { id, class: 'raw' },
    h('summary', null, title),
    h('div', { class: 'raw-actions' }, copyButton(text, `Copy ${title}`)),
    h('pre', { tabindex: '0' }, pretty));
}
