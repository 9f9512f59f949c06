// Audit log: every change, who made it (a person, a token or an agent) and
// to what, newest first; filtered by person, action and target, each entry
// linking to what it changed.
import { h, replace, fmtTime, badge, debounce } from '../dom.js';
import { request, list, qs } from '../api.js';
import { adminHead, showError, table, emptyRow } from '../admin.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** API paths of the REST API and the console page that shows them. */
const PAGES = [
  [/^\/api\/v1\/agents\/([^/]+)/, (m) => '/agents/' + m[1]],
  [/^\/api\/v1\/configs\/([^/]+)/, (m) => '/configs/' + m[1]],
  [/^\/api\/v1\/assignments\b/, () => '/assignments'],
  [/^\/api\/v1\/rollouts\b/, () => '/rollouts'],
  [/^\/api\/v1\/(packages|package-assignments)\b/, () => '/packages'],
  [/^\/api\/v1\/connection-settings\b/, () => '/admin/connection-settings'],
  [/^\/api\/v1\/(tokens|enrollment-tokens)\b/, () => '/admin/tokens'],
  [/^\/api\/v1\/certificates\b/, () => '/admin/certificates'],
];

/** targetHref is the console page of an entry's target, or null. */
export function targetHref(e) {
  const t = e.target || '';
  for (const [re, to] of PAGES) {
    const m = re.exec(t);
    if (m) return to(m);
  }
  const a = e.action || '';
  if (a.startsWith('certificate.')) return '/admin/certificates?agent=' + encodeURIComponent(t);
  if (UUID.test(t)) return '/agents/' + t;
  if (a.startsWith('token.') || a.startsWith('enrollment_token.')) return '/admin/tokens';
  if (a.startsWith('connection_settings.')) return '/admin/connection-settings';
  return null;
}

function actionKind(a) {
  if (/refused|rejected|revoke|delete|DELETE/.test(a)) return 'bad';
  if (/revealed/.test(a)) return 'warn';
  return 'info';
}

export function mount(root, ctx) {
  ctx.setTitle('Audit log');
  const field = (id, label, value, placeholder, testid) => {
    const input = h('input', { type: 'search', id, value: value || '', placeholder, 'data-testid': testid });
    return [input, h('div', { class: 'field grow' }, h('label', { for: id }, label), input)];
  };
  const [actor, actorF] = field('au-actor', 'Person or token', ctx.query.get('actor'), 'alice, ci-deploy, admin session', 'audit-actor');
  // Suggest the people and tokens seen so far.
  const actors = h('datalist', { id: 'au-actors' });
  const seen = new Set();
  actor.setAttribute('list', 'au-actors');
  actorF.append(actors);
  const [action, actionF] = field('au-action', 'Action', ctx.query.get('action'), 'token. (prefix) or PUT /api/v1/configs/{name}', 'audit-action');
  const [target, targetF] = field('au-target', 'Target', ctx.query.get('target'), 'gw, /api/v1/configs/gw or an agent id', 'audit-target');
  const rows = h('tbody', { 'data-testid': 'audit-rows' });
  const err = h('div');
  root.append(...adminHead('Audit log', 'Every change made through the API, the console or by agents enrolling, newest first.'),
    h('div', { class: 'toolbar' }, actorF, actionF, targetF),
    err,
    h('section', { class: 'panel', 'aria-label': 'Audit log' }, table('audit-table', ['Time', 'Who', 'Action', 'Target', 'Details'], rows)));

  const filterLink = (k, v, text) => h('a', { href: '/admin/audit' + qs({ [k]: v }), title: `Only ${k} ${v}` }, text || v);
  function row(e) {
    const href = targetHref(e);
    return h('tr', { 'data-testid': 'audit-row', 'data-action': e.action, 'data-actor': e.actor },
      h('td', { class: 'nowrap' }, fmtTime(e.time)),
      h('td', { 'data-testid': 'audit-actor-cell' }, filterLink('actor', e.actor)),
      h('td', null, badge(e.action, actionKind(e.action))),
      h('td', { class: 'mono' }, e.target ? (href ? h('a', { href, 'data-testid': 'audit-target-link' }, e.target) : e.target) : ''),
      h('td', { class: 'mono faint' }, e.details ? JSON.stringify(e.details) : ''));
  }
  let alive = true, ctrl = null;
  async function load() {
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    const f = { actor: actor.value.trim(), action: action.value.trim(), target: target.value.trim() };
    const u = new URL(location.href);
    for (const [k, v] of Object.entries(f)) { if (v) u.searchParams.set(k, v); else u.searchParams.delete(k); }
    history.replaceState(null, '', u.pathname + u.search);
    let all;
    try { all = list(await request('GET', '/audit' + qs({ ...f, limit: 500 }), undefined, { signal: ctrl.signal }), 'entries'); } catch (e) { if (alive) showError(err, e, 'audit log'); return; }
    if (!alive) return;
    replace(err);
    for (const e of all) if (!seen.has(e.actor)) { seen.add(e.actor); actors.append(h('option', { value: e.actor })); }
    replace(rows, all.length ? all.map(row) : emptyRow(5, 'No audit entry matches.'));
  }
  const later = debounce(load, 300);
  for (const i of [actor, action, target]) i.addEventListener('input', later);
  load();
  return () => { alive = false; later.cancel(); if (ctrl) ctrl.abort(); };
}
