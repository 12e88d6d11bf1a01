// HTTP with the registry's token flow. The app signs in through POST /token once with the
// password, then asks for access tokens per scope with the refresh token. Access tokens
// live only in this module's memory and are renewed shortly before they expire.
import { currentSession, endSession, startSession, updateRefreshToken } from './session.js';

const CLIENT_ID = 'simple-registry-ui';
const RENEW_MARGIN_MS = 30_000; // renew a token this long before it expires

export class ApiError extends Error {
  constructor(status, code, message, detail) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

// scope → Promise<{token, expiresAt, granted}>
const tokens = new Map();

/** Forgets every access token (on sign-in and sign-out). */
export function forgetTokens() {
  tokens.clear();
}

/** Parses `Bearer realm="…",service="…",scope="…"` into an object. */
export function parseChallenge(header) {
  const result = {};
  if (!header) return result;
  for (const match of header.matchAll(/(\w+)="([^"]*)"/g)) result[match[1]] = match[2];
  return result;
}

/** fetch() that turns a network failure into an ApiError; never sends cookies or
 * lets the browser pop up its own login prompt. */
async function send(url, init) {
  try {
    return await fetch(url, { credentials: 'omit', cache: 'no-store', ...init });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', `Cannot reach the registry: ${err.message}`);
  }
}

/** The API's own error message from an error response. */
export async function errorFrom(res) {
  let text = '';
  try {
    text = await res.text();
    const body = JSON.parse(text);
    const first = (body.errors && body.errors[0]) || body;
    if (first && first.message) {
      return new ApiError(res.status, first.code || '', first.message, first.detail);
    }
  } catch {
    // Not JSON: fall through to the status line.
  }
  const message = text.trim().slice(0, 300) || `${res.status} ${res.statusText}`.trim();
  return new ApiError(res.status, '', message);
}

/**
 * Asks /token. No `service` is sent: the token endpoint then uses the registry's own
 * service name, the one its challenges name, so the app need not probe GET /v2/ for it
 * (a probe that would log a 401 in the console on every page load).
 */
async function tokenRequest(form, query) {
  const anonymous = form === null;
  const url = anonymous ? `/token?${new URLSearchParams(query)}` : '/token';
  const init = anonymous
    ? {}
    : {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form),
      };
  const res = await send(url, init);
  if (!res.ok) throw await errorFrom(res);
  return res.json();
}

function remember(scope, body) {
  const lifetime = (Number(body.expires_in) || 60) * 1000;
  const entry = {
    token: body.access_token || body.token,
    expiresAt: Date.now() + lifetime,
    granted: String(body.scope || ''),
  };
  tokens.set(scope, Promise.resolve(entry));
  return entry;
}

/** A new access token for `scope`: by refresh token when signed in, else anonymously. */
async function fetchToken(scope) {
  const session = currentSession();
  if (!session) {
    const body = await tokenRequest(null, { scope });
    return remember(scope, body);
  }
  let body;
  try {
    body = await tokenRequest(
      {
        grant_type: 'refresh_token',
        refresh_token: session.refreshToken,
        scope,
        client_id: CLIENT_ID,
      },
    );
  } catch (err) {
    if (err.status === 401) {
      // The refresh token expired or its user is gone: browse on anonymously, and say so.
      const ended = new ApiError(401, 'UNAUTHORIZED', `Your session has ended (${err.message}); please sign in again.`);
      forgetTokens();
      endSession(ended.message);
      throw ended;
    }
    throw err;
  }
  updateRefreshToken(body.refresh_token);
  return remember(scope, body);
}

/** The cached access token for `scope` unless it is about to expire; `fresh` forces a new one. */
export async function tokenFor(scope, fresh = false) {
  const cached = tokens.get(scope);
  if (cached && !fresh) {
    const entry = await cached.catch(() => null);
    if (entry && entry.expiresAt - Date.now() > RENEW_MARGIN_MS) return entry;
  }
  const pending = fetchToken(scope);
  tokens.set(scope, pending);
  pending.catch(() => tokens.delete(scope));
  return pending;
}

/** Signs in: the password goes to /token once; the refresh token is kept, the password not. */
export async function signIn(user, password, scope) {
  const body = await tokenRequest({
    grant_type: 'password',
    username: user,
    password,
    scope,
    access_type: 'offline',
    client_id: CLIENT_ID,
  });
  if (!body.refresh_token) throw new ApiError(0, '', 'The registry did not issue a refresh token.');
  forgetTokens();
  remember(scope, body);
  startSession(user, body.refresh_token);
}

/** Does the registry grant `action` on `scope`'s resource (e.g. delete on a repository)? */
export async function permits(resource, action) {
  const scope = `${resource}:${action}`;
  let entry;
  try {
    entry = await tokenFor(scope);
  } catch (err) {
    if (err.status === 401) return false; // anonymous access is off: nothing is granted
    throw err;
  }
  return grants(entry.granted, resource, action);
}

/** Whether a granted scope string ("repository:a:pull,delete registry:catalog:*") holds the action. */
export function grants(granted, resource, action) {
  for (const part of granted.split(' ')) {
    const cut = part.lastIndexOf(':');
    if (cut < 0 || part.slice(0, cut) !== resource) continue;
    const actions = part.slice(cut + 1).split(',');
    if (actions.includes(action) || actions.includes('*')) return true;
  }
  return false;
}

/**
 * A request to the registry API with the token for `scope`. A scope the token was not
 * granted is refused here, without a request the registry would refuse anyway. On a 401 the
 * challenge names the scope it wants: one new token for that scope, one retry. Non-2xx
 * answers throw an ApiError carrying the API's message.
 */
export async function request(path, { method = 'GET', accept, scope, signal } = {}) {
  const headers = {};
  if (accept) headers.Accept = accept;
  const entry = scope ? await tokenFor(scope) : null;
  if (entry && !covers(entry.granted, scope)) throw denied(scope);
  let res = await send(path, { method, headers: withToken(headers, entry), signal });
  if (res.status === 401) {
    const wanted = parseChallenge(res.headers.get('WWW-Authenticate')).scope || scope;
    const retry = wanted ? await tokenFor(wanted, true) : null;
    if (retry && covers(retry.granted, wanted)) {
      res = await send(path, { method, headers: withToken(headers, retry), signal });
    }
  }
  if (!res.ok) throw await errorFrom(res);
  return res;
}

/** Whether the granted scopes hold every action of `scope` ("repository:a:pull,push"). */
function covers(granted, scope) {
  const cut = scope.lastIndexOf(':');
  const resource = scope.slice(0, cut);
  return scope.slice(cut + 1).split(',').every((action) => grants(granted, resource, action));
}

function denied(scope) {
  const who = currentSession() ? currentSession().user : 'anonymous';
  return new ApiError(401, 'DENIED', `Access denied: ${who} is not granted ${scope}.`);
}

function withToken(headers, entry) {
  return entry && entry.token ? { ...headers, Authorization: `Bearer ${entry.token}` } : headers;
}

/** The next page's URL from a `Link: <url>; rel="next"` header, or null. */
export function nextLink(res) {
  const header = res.headers.get('Link');
  if (!header) return null;
  const match = header.match(/<([^>]+)>\s*;\s*rel="?next"?/);
  if (!match) return null;
  const url = new URL(match[1], location.origin);
  return url.origin === location.origin ? url.pathname + url.search : null;
}
