// The header's sign-in / sign-out controls and the sign-in dialog.
import { signIn, forgetTokens } from './api.js';
import { currentSession, endSession } from './session.js';

const $ = (id) => document.getElementById(id);

/** Shows who is signed in (or the Sign in button). */
export function showAccount() {
  const session = currentSession();
  $('whoami').hidden = !session;
  $('whoami').textContent = session ? session.user : '';
  $('signin').hidden = Boolean(session);
  $('signout').hidden = !session;
}

export function startAccount() {
  const dialog = $('signin-dialog');
  const form = $('signin-form');
  const error = $('signin-error');
  $('signin').addEventListener('click', () => {
    error.hidden = true;
    error.textContent = '';
    dialog.showModal();
    $('username').focus();
  });
  $('signin-cancel').addEventListener('click', () => dialog.close());
  // Never leave the password in the page once the dialog is gone.
  dialog.addEventListener('close', () => {
    $('password').value = '';
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit(dialog, error);
  });
  $('signout').addEventListener('click', () => {
    forgetTokens();
    endSession();
    $('signin').focus();
  });
  showAccount();
}

async function submit(dialog, error) {
  const button = $('signin-submit');
  const user = $('username').value.trim();
  const password = $('password').value;
  button.disabled = true;
  error.hidden = true;
  try {
    // The catalog scope: the first thing the app shows after signing in.
    await signIn(user, password, 'registry:catalog:*');
    dialog.close();
    $('signout').focus();
  } catch (err) {
    error.textContent = err.message || String(err);
    error.hidden = false;
    $('password').select();
  } finally {
    button.disabled = false;
  }
}
