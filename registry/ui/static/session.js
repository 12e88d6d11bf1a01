// Who is signed in. Only the user name and the newest refresh token are kept, in
// sessionStorage (gone when the tab closes); the password never is, and access tokens
// stay in memory (api.js).

const KEY = 'simple-registry.session';

/** Fires 'change' on sign-in and sign-out so the header and the view can follow. */
export const sessionEvents = new EventTarget();

let state = load();

function load() {
  try {
    const value = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    if (value && typeof value.user === 'string' && typeof value.refreshToken === 'string') return value;
  } catch {
    // A damaged entry is as good as none.
  }
  return null;
}

function store() {
  if (state) sessionStorage.setItem(KEY, JSON.stringify(state));
  else sessionStorage.removeItem(KEY);
}

/** {user, refreshToken} or null when browsing anonymously. */
export function currentSession() {
  return state;
}

export function startSession(user, refreshToken) {
  state = { user, refreshToken };
  store();
  sessionEvents.dispatchEvent(new Event('change'));
}

/** Each refresh answers a new refresh token; keeping the newest keeps the session alive. */
export function updateRefreshToken(refreshToken) {
  if (!state || !refreshToken) return;
  state = { ...state, refreshToken };
  store();
}

/** Ends the session; `reason` (e.g. an expired refresh token) is shown to the user. */
export function endSession(reason = '') {
  state = null;
  store();
  sessionEvents.dispatchEvent(new CustomEvent('change', { detail: { reason } }));
}
