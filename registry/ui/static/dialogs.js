// The confirmation dialog (static in index.html, so its ids are stable).
import { replace } from './dom.js';

/**
 * Asks before something is deleted. `body` is a list of nodes/strings naming what goes.
 * Resolves true on "yes"; Escape, Cancel or closing resolve false.
 */
export function confirmDialog(title, body, yesLabel = 'Delete') {
  const dialog = document.getElementById('confirm');
  const yes = document.getElementById('confirm-yes');
  const no = document.getElementById('confirm-no');
  document.getElementById('confirm-title').textContent = title;
  replace(document.getElementById('confirm-text'), ...body);
  yes.textContent = yesLabel;
  return new Promise((resolve) => {
    const finish = (answer) => {
      yes.removeEventListener('click', onYes);
      no.removeEventListener('click', onNo);
      dialog.removeEventListener('close', onClose);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onYes = () => finish(true);
    const onNo = () => finish(false);
    const onClose = () => finish(false);
    yes.addEventListener('click', onYes);
    no.addEventListener('click', onNo);
    dialog.addEventListener('close', onClose);
    dialog.showModal();
    no.focus(); // the safe choice has focus, so Enter does not delete
  });
}
