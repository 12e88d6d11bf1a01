// Light and dark themes: the system preference until the user picks one with the toggle,
// which is remembered in localStorage. <html data-theme> always says which one is on.

const KEY = 'simple-registry.theme';
const media = window.matchMedia('(prefers-color-scheme: dark)');

function saved() {
  try {
    const value = localStorage.getItem(KEY);
    return value === 'light' || value === 'dark' ? value : null;
  } catch {
    return null; // storage can be disabled
  }
}

function apply(theme) {
  document.documentElement.dataset.theme = theme;
  const button = document.getElementById('theme-toggle');
  if (button) {
    const other = theme === 'dark' ? 'light' : 'dark';
    button.textContent = theme === 'dark' ? '☀ Light' : '☾ Dark';
    button.setAttribute('aria-label', `Switch to the ${other} theme`);
  }
}

export function startTheme() {
  apply(saved() || (media.matches ? 'dark' : 'light'));
  media.addEventListener('change', () => {
    if (!saved()) apply(media.matches ? 'dark' : 'light');
  });
  document.getElementById('theme-toggle').addEventListener('click', () => {
    const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
    try {
      localStorage.setItem(KEY, next);
    } catch {
      // not remembered, but still switched
    }
    apply(next);
  });
}
