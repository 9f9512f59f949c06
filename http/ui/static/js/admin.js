// Shared parts of the admin pages: the section's tabs, role checks, the
// one-time secret box and the error callout.
import { h, replace, copyText, toast } from './dom.js';

/** ADMIN_TABS are the pages of the Admin section, in tab order. */
export const ADMIN_TABS = [
  { href: '/admin/users', label: 'Users', testid: 'admin-tab-users' },
  { href: '/admin/tokens', label: 'Tokens', testid: 'admin-tab-tokens' },
  { href: '/admin/certificates', label: 'Certificates', testid: 'admin-tab-certificates' },
  { href: '/admin/connection-settings', label: 'Connection settings', testid: 'admin-tab-connections' },
  { href: '/admin/audit', label: 'Audit log', testid: 'admin-tab-audit' },
];

const RANK = { viewer: 1, operator: 2, admin: 3 };

/** allows reports whether ctx's role has at least need (viewer, operator, admin). */
export function allows(ctx, need) {
  return (RANK[ctx.role] || 0) >= RANK[need];
}

/** pageHead renders a page title, a line under it and actions on the right. */
export function pageHead(title, sub, ...actions) {
  return h('div', { class: 'page-head' },
    h('div', { class: 'titles' }, h('h1', { tabindex: '-1' }, title), sub ? h('div', { class: 'sub' }, sub) : null),
    actions.length ? h('div', { class: 'actions' }, actions) : null);
}

/** adminHead is pageHead preceded by the Admin section's tabs. */
export function adminHead(title, sub, ...actions) {
  const here = location.pathname.replace(/\/$/, '');
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Admin' }, ADMIN_TABS.map((t) => h('a', {
    href: t.href, class: 'tab', 'data-testid': t.testid, 'aria-current': t.href === here ? 'page' : null,
  }, t.label)));
  // In a narrow window the tabs scroll sideways: show the current one.
  requestAnimationFrame(() => {
    const cur = tabs.querySelector('[aria-current]');
    if (cur) tabs.scrollLeft = Math.max(0, cur.offsetLeft - tabs.offsetLeft - 12);
  });
  return [
    tabs,
    pageHead(title, sub, ...actions),
  ];
}

/** showError puts an API error into box, explaining 403 and 501. */
export function showError(box, e, what) {
  if (e.name === 'AbortError' || e.status === 401) return;
  let msg = e.message;
  if (e.status === 403) msg = `Your role cannot see ${what}: ${e.message}`;
  else if (e.status === 501) msg = `This server keeps no ${what}.`;
  replace(box, h('div', { class: 'callout bad panel-body', role: 'alert', 'data-testid': 'load-error' }, msg));
}

/**
 * secretBox shows a secret that the server will never show again, with a
 * copy button.
 */
export function secretBox(secret, testid, note) {
  const field = h('input', { type: 'text', class: 'mono', readonly: true, value: secret, 'data-testid': testid, 'aria-label': 'Secret' });
  return h('div', { class: 'secret-box callout', 'data-testid': testid + '-box' },
    h('p', null, h('strong', null, 'Copy it now: '), note || 'it is shown only this once.'),
    h('div', { class: 'inline grow' }, field,
      h('button', { type: 'button', class: 'small', 'data-testid': testid + '-copy', onclick: async () => {
        field.select();
        toast((await copyText(secret)) ? 'Copied.' : 'Select the text and copy it.', undefined);
      } }, 'Copy')));
}

/** fmtBytes renders a size: 1.5 MiB. */
export function fmtBytes(n) {
  if (!(n >= 0)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 1 : 0) : String(n)) + ' ' + units[i];
}

/**
 * table renders a data table inside a scrolling wrapper. In a narrow
 * window each row becomes a card whose cells carry their column's name
 * (data-label, kept up to date as rows are replaced).
 */
export function table(testid, columns, tbody) {
  const label = () => {
    for (const tr of tbody.children) {
      [...tr.children].forEach((td, i) => { if (!td.hasAttribute('data-label')) td.setAttribute('data-label', columns[i] || ''); });
    }
  };
  new MutationObserver(label).observe(tbody, { childList: true });
  label();
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data cards', 'data-testid': testid },
    h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c)))), tbody));
}

/** emptyRow is a table row saying there is nothing to show. */
export function emptyRow(cols, text) {
  return h('tr', null, h('td', { class: 'empty', colspan: cols }, text));
}
