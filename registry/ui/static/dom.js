// Small element builder. Text always goes in as text nodes (never innerHTML), because
// repository names, tags, labels and annotations come from whoever pushed them.

/**
 * h('a', {href: '/ui/x', class: 'link', dataset: {repo: 'x'}, on: {click: fn}}, 'text', child)
 * Attribute values of null/undefined/false are skipped; true sets an empty attribute.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'on') {
      for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    } else if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

/** Appends strings (as text), nodes and (nested) arrays; skips null/undefined/false. */
export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

/** Removes all children and appends the new ones. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A <table> inside a scrolling box, so wide tables scroll instead of the page. */
export function table(id, headers, rows, caption) {
  const head = h('thead', null, h('tr', null, headers.map((t) => h('th', { scope: 'col' }, t))));
  const body = h('tbody');
  const frag = document.createDocumentFragment();
  for (const row of rows) frag.appendChild(row);
  body.appendChild(frag);
  const t = h('table', { id }, caption ? h('caption', null, caption) : null, head, body);
  return h('div', { class: 'table-scroll', tabindex: '0', role: 'region', 'aria-label': caption || id }, t);
}

/** A definition list from [term, value] pairs; a null value leaves the pair out. */
export function dl(pairs, attrs) {
  const list = h('dl', attrs);
  for (const [term, value, field] of pairs) {
    if (value === null || value === undefined) continue;
    list.append(h('dt', null, term), h('dd', field ? { dataset: { field } } : null, value));
  }
  return list;
}
