// Human-readable numbers and times; the exact value always goes into a title attribute.
import { h } from './dom.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
const numberFormat = new Intl.NumberFormat(undefined);

export function formatCount(n) {
  return numberFormat.format(n);
}

/** "12.3 MiB" for 12,897,484 bytes. */
export function humanSize(bytes) {
  if (!Number.isFinite(bytes)) return '';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** A <span> with the human size, the exact byte count on hover. */
export function sizeEl(bytes) {
  if (!Number.isFinite(bytes)) return h('span', { class: 'muted' }, '—');
  return h('span', { title: `${formatCount(bytes)} bytes` }, humanSize(bytes));
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const STEPS = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
];

/** "3 days ago" for a Date. */
export function relativeTime(date, now = Date.now()) {
  const seconds = (date.getTime() - now) / 1000;
  for (const [unit, size] of STEPS) {
    if (Math.abs(seconds) >= size || unit === 'second') {
      return relative.format(Math.round(seconds / size), unit);
    }
  }
  return '';
}

/** Parses an RFC 3339 time; null when absent or malformed. */
export function parseTime(value) {
  if (typeof value !== 'string' || value === '') return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** A <time> with the relative time, the exact UTC time on hover. */
export function timeEl(date) {
  if (!date) return h('span', { class: 'muted' }, '—');
  const iso = date.toISOString();
  return h('time', { datetime: iso, title: iso.replace('T', ' ').replace('.000Z', ' UTC') }, relativeTime(date));
}

/** "sha256:0123456789ab" — enough of a digest to tell it apart; full value on hover. */
export function shortDigest(digest) {
  if (typeof digest !== 'string') return '';
  const [alg, hex] = digest.split(':');
  return hex ? `${alg}:${hex.slice(0, 12)}` : digest;
}

export function digestEl(digest) {
  return h('code', { class: 'digest', title: digest }, shortDigest(digest));
}

/** A short name for a media type: the part after the vendor tree, e.g. "oci.image.index.v1". */
export function shortMediaType(mediaType) {
  if (typeof mediaType !== 'string') return '';
  return mediaType.replace(/^application\/vnd\./, '').replace(/\+json$/, '');
}

export function mediaTypeEl(mediaType) {
  if (!mediaType) return h('span', { class: 'muted' }, '—');
  return h('span', { class: 'media-type', title: mediaType }, shortMediaType(mediaType));
}
