// The registry's endpoints as the views need them. Content by digest never changes, so
// manifests and configs fetched by digest are cached for the page's life.
import { request, nextLink, ApiError } from './api.js';
import {
  MANIFEST_ACCEPT, mediaTypeOf, kindOf, childrenOf, imageSize, isPlatformImage,
  platformOf, annotatedCreated, isImageConfig,
} from './manifests.js';

const MAX_CONFIG_BYTES = 4 * 1024 * 1024; // a config larger than this is not shown
const byDigest = new Map(); // digest → Promise<manifest record>
const configs = new Map(); // digest → Promise<config JSON>

const pull = (name) => `repository:${name}:pull`;
const path = (name, kind, ref) => `/v2/${name}/${kind}/${ref}`;

/** One page of the catalog: {repositories, next} where next is the Link URL or null. */
export async function catalogPage(url, signal) {
  const res = await request(url, { scope: 'registry:catalog:*', signal });
  const body = await res.json();
  return { repositories: Array.isArray(body.repositories) ? body.repositories : [], next: nextLink(res) };
}

/** Every tag of a repository, following Link pages if the server sends them. */
export async function listTags(name, signal) {
  let url = `/v2/${name}/tags/list`;
  const all = [];
  while (url) {
    const res = await request(url, { scope: pull(name), signal });
    const body = await res.json();
    if (Array.isArray(body.tags)) all.push(...body.tags);
    url = nextLink(res);
  }
  return all;
}

/** {digest, mediaType, kind, manifest, text, size} for a tag or digest. */
export function getManifest(name, ref, signal) {
  if (ref.includes(':') && byDigest.has(ref)) return byDigest.get(ref);
  const pending = fetchManifest(name, ref, signal);
  if (ref.includes(':')) {
    byDigest.set(ref, pending);
    pending.catch(() => byDigest.delete(ref));
  }
  return pending;
}

async function fetchManifest(name, ref, signal) {
  const res = await request(path(name, 'manifests', ref), { accept: MANIFEST_ACCEPT, scope: pull(name), signal });
  const text = await res.text();
  let manifest;
  try {
    manifest = JSON.parse(text);
  } catch {
    throw new ApiError(res.status, 'MANIFEST_INVALID', 'The manifest is not valid JSON.');
  }
  const digest = res.headers.get('Docker-Content-Digest') || (ref.includes(':') ? ref : '');
  const mediaType = mediaTypeOf(manifest, res.headers.get('Content-Type'));
  const record = { digest, mediaType, kind: kindOf(manifest, mediaType), manifest, text, size: text.length };
  const length = Number(res.headers.get('Content-Length'));
  if (length) record.size = length;
  if (digest && !byDigest.has(digest)) byDigest.set(digest, Promise.resolve(record));
  return record;
}

/** The configuration blob as {json, text} (null when it is too large to show). */
export function getConfig(name, descriptor, signal) {
  const digest = descriptor.digest;
  if (configs.has(digest)) return configs.get(digest);
  if (Number(descriptor.size) > MAX_CONFIG_BYTES) return Promise.resolve(null);
  const pending = request(path(name, 'blobs', digest), { scope: pull(name), signal })
    .then((res) => res.text())
    .then((text) => ({ json: JSON.parse(text), text }));
  configs.set(digest, pending);
  pending.catch(() => configs.delete(digest));
  return pending;
}

/** The referrers of a manifest: descriptors with artifactType and annotations. */
export async function getReferrers(name, digest, signal) {
  const res = await request(path(name, 'referrers', digest), { scope: pull(name), signal });
  const body = await res.json();
  return childrenOf(body);
}

/** The digest a tag points at, from a HEAD request. */
export async function tagDigest(name, tag, signal) {
  const res = await request(path(name, 'manifests', tag), {
    method: 'HEAD', accept: MANIFEST_ACCEPT, scope: pull(name), signal,
  });
  return res.headers.get('Docker-Content-Digest') || '';
}

/** DELETE by tag removes the tag; by digest removes the manifest and its tags. */
export async function deleteManifest(name, ref) {
  await request(path(name, 'manifests', ref), { method: 'DELETE', scope: `repository:${name}:delete` });
  if (ref.includes(':')) byDigest.delete(ref);
}

/**
 * What the tags table shows for one tag: digest, media type, total size, platforms and
 * created time. An index's size is the sum of its platform images; its created time is
 * the newest of theirs.
 */
export async function tagSummary(name, tag, signal) {
  const record = await getManifest(name, tag, signal);
  const { manifest, kind } = record;
  const summary = { digest: record.digest, mediaType: record.mediaType, kind, size: null, platforms: [], created: null };
  if (kind === 'index') {
    const children = childrenOf(manifest);
    summary.platforms = children.filter(isPlatformImage).map(platformOf);
    const images = await Promise.all(
      children.filter(isPlatformImage).map((d) => imageFacts(name, d.digest, signal)),
    );
    summary.size = images.reduce((sum, f) => sum + f.size, 0);
    summary.created = newest([annotatedCreated(manifest), ...images.map((f) => f.created)]);
  } else {
    const facts = await imageFacts(name, record.digest || tag, signal, record);
    Object.assign(summary, { size: facts.size, created: facts.created, platforms: facts.platform ? [facts.platform] : [] });
  }
  return summary;
}

async function imageFacts(name, digest, signal, known) {
  const record = known || (await getManifest(name, digest, signal));
  const { manifest } = record;
  const facts = { size: imageSize(manifest), created: annotatedCreated(manifest), platform: null };
  const config = manifest.config;
  if (config && isImageConfig(config.mediaType)) {
    const blob = await getConfig(name, config, signal).catch(() => null);
    const json = blob && blob.json;
    if (json) {
      facts.created = facts.created || json.created || null;
      if (json.os) facts.platform = platformOf({ platform: json });
    }
  }
  return facts;
}

function newest(times) {
  const valid = times.filter((t) => t && !Number.isNaN(Date.parse(t)));
  if (valid.length === 0) return null;
  return valid.reduce((a, b) => (Date.parse(a) >= Date.parse(b) ? a : b));
}
