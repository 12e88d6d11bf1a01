// What a manifest is (index, image, artifact) and what it says, for the four supported
// formats: OCI image manifest and index, Docker schema 2 manifest and manifest list.

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const MANIFEST_ACCEPT = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(', ');

const IMAGE_CONFIGS = new Set([
  'application/vnd.oci.image.config.v1+json',
  'application/vnd.docker.container.image.v1+json',
]);
export const EMPTY_CONFIG = 'application/vnd.oci.empty.v1+json';
const TITLE = 'org.opencontainers.image.title';
const CREATED = 'org.opencontainers.image.created';
const REFERENCE_TYPE = 'vnd.docker.reference.type';

/** The manifest's media type: its own field, else the Content-Type it was served with. */
export function mediaTypeOf(manifest, contentType) {
  if (typeof manifest.mediaType === 'string' && manifest.mediaType) return manifest.mediaType;
  return (contentType || '').split(';')[0].trim();
}

/** 'index' | 'image' | 'artifact' */
export function kindOf(manifest, mediaType) {
  if (mediaType === OCI_INDEX || mediaType === DOCKER_LIST || Array.isArray(manifest.manifests)) {
    return 'index';
  }
  const configType = manifest.config && manifest.config.mediaType;
  if (manifest.artifactType || !IMAGE_CONFIGS.has(configType)) return 'artifact';
  return 'image';
}

/** Whether a config blob is an image configuration worth fetching and showing. */
export function isImageConfig(mediaType) {
  return IMAGE_CONFIGS.has(mediaType);
}

/** The artifact type: `artifactType`, else the config's media type (the spec's fallback). */
export function artifactTypeOf(manifest) {
  return manifest.artifactType || (manifest.config && manifest.config.mediaType) || '';
}

export function layersOf(manifest) {
  return Array.isArray(manifest.layers) ? manifest.layers.filter(isDescriptor) : [];
}

export function childrenOf(manifest) {
  return Array.isArray(manifest.manifests) ? manifest.manifests.filter(isDescriptor) : [];
}

function isDescriptor(d) {
  return d && typeof d === 'object' && typeof d.digest === 'string';
}

/** Config plus layers: what a pull of this image downloads (compressed). */
export function imageSize(manifest) {
  let total = (manifest.config && Number(manifest.config.size)) || 0;
  for (const layer of layersOf(manifest)) total += Number(layer.size) || 0;
  return total;
}

export function layersTotal(manifest) {
  return layersOf(manifest).reduce((sum, l) => sum + (Number(l.size) || 0), 0);
}

/**
 * "linux/arm64/v8" for an index entry. An entry without a real platform (a BuildKit
 * attestation says unknown/unknown) is named by its `vnd.docker.reference.type`
 * annotation when it has one, else "unknown/unknown".
 */
export function platformOf(descriptor) {
  const p = descriptor.platform || {};
  const type = descriptor.annotations && descriptor.annotations[REFERENCE_TYPE];
  if (type && (!p.os || p.os === 'unknown')) return String(type);
  return [p.os || 'unknown', p.architecture || 'unknown', p.variant].filter(Boolean).join('/');
}

/** Whether an index entry is a real platform image (not an attestation or unknown entry). */
export function isPlatformImage(descriptor) {
  const p = descriptor.platform;
  return Boolean(p && p.os && p.os !== 'unknown');
}

/** A file's name: its org.opencontainers.image.title annotation. */
export function titleOf(descriptor) {
  const a = descriptor.annotations;
  return a && typeof a[TITLE] === 'string' ? a[TITLE] : '';
}

/** The created time the manifest itself states (artifacts, some indexes), else null. */
export function annotatedCreated(manifest) {
  const a = manifest.annotations;
  return a && typeof a[CREATED] === 'string' ? a[CREATED] : null;
}
