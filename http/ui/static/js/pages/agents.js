// Agent list: filters, sort and paging all done by the server (the URL
// holds them, so a filtered list can be linked), the reason an agent is
// unhealthy or failed in its row, and bulk actions (label, restart, forget
// offline) on everything the filters match, each previewed with its count.
// The current page refreshes live.
import { h, replace, debounce, throttle, timeEl, badge, configStatusKind, agentName, attr, shortId, SYNC_STATES, syncLabel, syncKind, configsText, toast } from '../dom.js';
import { api, list } from '../api.js';
import { on } from '../events.js';
import { openDialog } from '../dialog.js';
import { allows } from '../admin.js';

const PAGE_SIZES = [25, 50, 100, 250];
const HEALTH = { healthy: ['Healthy', 'ok'], unhealthy: ['Unhealthy', 'bad'], unknown: ['Unknown', ''] };
const NOT_IN_SYNC = 'failed,rolled_back,drifted';
const CONFIG_STATES = ['APPLIED', 'APPLYING', 'FAILED', 'UNSET'];
// FILTERS are the query parameters the list passes to GET /api/v1/agents
// as they are (attr.KEY parameters travel in st.attrs).
// healthy=true|false is the overview's Healthy/Unhealthy cards' filter
// (what the agent last reported, offline or not).
const FILTERS = ['q', 'selector', 'online', 'health', 'healthy', 'sync', 'config', 'type', 'version'];

const dash = () => h('span', { class: 'faint' }, '—');

/** problem is why an agent needs attention: unhealthy reason, else a config error. */
function problem(a) {
  const sy = a.sync || {};
  const st = a.remote_config_status || {};
  return a.health_reason || sy.error || (st.status === 'FAILED' ? st.error_message : '') || '';
}

// Columns: key, header, the server's sort key (none: not sortable), cell.
const COLUMNS = [
  { key: 'status', label: 'Status', sort: 'online',
    cell: (a) => badge(a.online ? 'Online' : 'Offline', a.online ? 'ok' : '', 'agent-online') },
  { key: 'name', label: 'Name', sort: 'type',
    cell: (a) => h('a', { href: '/agents/' + encodeURIComponent(a.id), 'data-testid': 'agent-link' }, agentName(a)) },
  { key: 'id', label: 'Instance', sort: 'id', cell: (a) => h('span', { class: 'mono', title: a.id }, shortId(a.id)) },
  { key: 'version', label: 'Version', sort: 'version', cell: (a) => attr(a, 'service.version') || dash() },
  { key: 'host', label: 'Host', sort: 'host', cell: (a) => attr(a, 'host.name') || dash() },
  { key: 'health', label: 'Health', sort: 'health',
    cell: (a) => {
      const [label, kind] = HEALTH[a.health_state] || HEALTH.unknown;
      return h('span', { title: a.online ? '' : 'Offline: its last report may no longer hold' }, badge(label, kind, 'agent-health'));
    } },
  { key: 'problem', label: 'Problem',
    cell: (a) => {
      const p = problem(a);
      return p ? h('span', { class: 'problem', title: p, 'data-testid': 'agent-problem' }, p) : dash();
    } },
  { key: 'config', label: 'Config',
    cell: (a) => {
      const st = a.remote_config_status;
      if (!st || !st.status || st.status === 'UNSET') return dash();
      return h('span', { title: st.error_message || '' }, badge(st.status, configStatusKind(st.status), 'agent-config-status'));
    } },
  { key: 'sync', label: 'Sync', sort: 'sync',
    cell: (a) => {
      const sy = a.sync || {};
      const title = [sy.desired ? 'Desired: ' + configsText(sy.desired) : 'Nothing assigned',
        sy.running ? 'Running: ' + configsText(sy.running) : (sy.running_hash ? 'Running: not from Steward' : ''),
        sy.error || ''].filter(Boolean).join('\n');
      return h('span', { title }, badge(syncLabel(sy.state), syncKind(sy.state), 'agent-sync'));
    } },
  { key: 'desired', label: 'Desired',
    cell: (a) => (a.sync && a.sync.desired ? h('span', { class: 'mono' }, configsText(a.sync.desired)) : dash()) },
  { key: 'labels', label: 'Labels',
    cell: (a) => {
      const ls = Object.entries(a.labels || {});
      if (!ls.length) return dash();
      return h('span', { class: 'chips' }, ls.slice(0, 3).map(([k, v]) => h('span', { class: 'chip label-chip' }, `${k}=${v}`)),
        ls.length > 3 ? h('span', { class: 'faint' }, `+${ls.length - 3}`) : null);
    } },
  { key: 'last_seen', label: 'Last seen', sort: 'last_seen', cell: (a) => timeEl(a.last_seen) },
];

function readState(query) {
  const limit = parseInt(query.get('limit'), 10);
  const st = { attrs: {} };
  for (const k of FILTERS) st[k] = query.get(k) || '';
  for (const [k, v] of query) if (k.startsWith('attr.') && k.length > 5) st.attrs[k.slice(5)] = v;
  let sort = query.get('sort') || '';
  if (sort && query.get('dir') === 'desc' && !sort.startsWith('-')) sort = '-' + sort;
  const known = COLUMNS.some((c) => c.sort && c.sort === sort.replace(/^-/, ''));
  st.sort = known ? sort : '';
  st.offset = Math.max(0, parseInt(query.get('offset'), 10) || 0);
  st.limit = limit >= 1 && limit <= 1000 ? limit : 50;
  return st;
}

/** filterParams are st's filters as GET /api/v1/agents query parameters. */
function filterParams(st) {
  const p = {};
  for (const k of FILTERS) if (st[k]) p[k] = st[k];
  for (const [k, v] of Object.entries(st.attrs)) p['attr.' + k] = v;
  return p;
}

function toQuery(st) {
  const u = new URLSearchParams(filterParams(st));
  if (st.sort) u.set('sort', st.sort);
  if (st.offset) u.set('offset', st.offset);
  if (st.limit !== 50) u.set('limit', st.limit);
  const s = u.toString();
  return '/agents' + (s ? '?' + s : '');
}

/** parseAttrs reads "key=value, key2=value2" from the attribute field. */
function parseAttrs(text) {
  const out = {};
  for (const part of text.split(',')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    else if (part.trim()) throw new Error(`Attribute filter "${part.trim()}": use key=value`);
  }
  return out;
}

const attrsText = (attrs) => Object.entries(attrs).map(([k, v]) => `${k}=${v}`).join(', ');

function select(id, testid, value, options) {
  const el = h('select', { id, 'data-testid': testid }, options.map(([v, label]) => h('option', { value: v }, label)));
  el.value = value;
  if (el.value !== value) { el.append(h('option', { value }, value)); el.value = value; }
  return el;
}

export function mount(root, ctx) {
  ctx.setTitle('Agents');
  const st = readState(ctx.query);

  const q = h('input', { type: 'search', id: 'f-q', value: st.q, placeholder: 'Name, id, host or version', 'data-testid': 'agents-search' });
  const selector = h('input', { type: 'text', id: 'f-sel', class: 'mono', value: st.selector, placeholder: 'env=prod,region in (eu,us)', 'data-testid': 'agents-selector', 'aria-describedby': 'f-sel-err' });
  const attrs = h('input', { type: 'text', id: 'f-attr', class: 'mono', value: attrsText(st.attrs), placeholder: 'host.arch=arm64', 'data-testid': 'agents-attr' });
  const type = h('input', { type: 'text', id: 'f-type', value: st.type, placeholder: 'otelcol-contrib', 'data-testid': 'agents-type' });
  const version = h('input', { type: 'text', id: 'f-version', value: st.version, placeholder: '0.120.0', size: 10, 'data-testid': 'agents-version' });
  const selErr = h('div', { id: 'f-sel-err', class: 'error-text', 'data-testid': 'agents-selector-error' });
  const online = select('f-online', 'agents-online', st.online, [['', 'Any'], ['true', 'Online'], ['false', 'Offline']]);
  // The overview's healthy=true|false (what agents last reported, offline
  // ones too) shows as two more choices of the same field.
  const health = select('f-health', 'agents-health', st.healthy ? 'healthy:' + st.healthy : st.health,
    [['', 'Any'], ['healthy', 'Healthy'], ['unhealthy', 'Unhealthy'], ['unknown', 'Unknown'],
      ['healthy:true', 'Reported healthy'], ['healthy:false', 'Not reported healthy']]);
  const sync = select('f-sync', 'agents-sync', st.sync, [['', 'Any'], ...SYNC_STATES, [NOT_IN_SYNC, 'Not in sync']]);
  const config = select('f-config', 'agents-config', st.config, [['', 'Any'], ...CONFIG_STATES.map((s) => [s, s === 'UNSET' ? 'None reported' : s[0] + s.slice(1).toLowerCase()])]);

  const count = h('span', { class: 'muted', 'data-testid': 'agents-count' });
  const thead = h('thead');
  const tbody = h('tbody', { 'data-testid': 'agents-rows' });
  const pager = h('div', { class: 'pager' });
  const table = h('table', { class: 'data', 'data-testid': 'agents-table', 'aria-label': 'Agents' }, thead, tbody);
  const bulk = allows(ctx, 'operator') ? h('div', { class: 'toolbar bulk', 'data-testid': 'agents-bulk' },
    h('span', { class: 'muted' }, 'Act on every agent these filters match:'),
    h('button', { type: 'button', class: 'small', 'data-testid': 'bulk-label', onclick: () => bulkLabel() }, 'Label…'),
    h('button', { type: 'button', class: 'small', 'data-testid': 'bulk-restart', onclick: () => bulkAct('restart') }, 'Restart…'),
    h('button', { type: 'button', class: 'small danger', 'data-testid': 'bulk-forget', onclick: () => bulkAct('forget') }, 'Forget offline…')) : null;

  const field = (id, label, input, cls) => h('div', { class: 'field' + (cls ? ' ' + cls : '') }, h('label', { for: id }, label), input);
  root.append(
    h('div', { class: 'page-head' },
      h('div', { class: 'titles' }, h('h1', { tabindex: '-1' }, 'Agents'), h('div', { class: 'sub' }, count))),
    h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Filter agents', onsubmit: (e) => { e.preventDefault(); apply(); } },
      field('f-q', 'Search', q, 'grow'),
      field('f-sel', 'Label selector', selector, 'grow'),
      field('f-online', 'Connection', online),
      field('f-health', 'Health', health),
      field('f-sync', 'Sync', sync),
      field('f-config', 'Config status', config),
      field('f-type', 'Type', type),
      field('f-version', 'Version', version),
      field('f-attr', 'Attributes', attrs),
      h('button', { type: 'submit', class: 'primary', 'data-testid': 'agents-apply' }, 'Apply')),
    selErr,
    bulk,
    h('div', { class: 'panel' }, h('div', { class: 'table-wrap' }, table), pager));

  function navigate() {
    history.replaceState(null, '', toQuery(st));
    load();
  }
  function apply(patch = {}) {
    let parsed;
    try { parsed = parseAttrs(attrs.value); } catch (e) { selErr.textContent = e.message; attrs.setAttribute('aria-invalid', 'true'); return; }
    attrs.removeAttribute('aria-invalid');
    const reported = health.value.startsWith('healthy:');
    Object.assign(st, { q: q.value.trim(), selector: selector.value.trim(), online: online.value,
      health: reported ? '' : health.value, healthy: reported ? health.value.slice(8) : '', sync: sync.value,
      config: config.value, type: type.value.trim(), version: version.value.trim(), attrs: parsed, offset: 0 }, patch);
    navigate();
  }
  const typed = debounce(() => apply(), 350);
  q.addEventListener('input', typed);
  for (const el of [online, health, sync, config]) el.addEventListener('change', () => apply());

  // Sorting asks the server for the first page in the new order.
  function renderHead() {
    const key = st.sort.replace(/^-/, '') || 'id';
    const desc = st.sort.startsWith('-');
    replace(thead, h('tr', null, COLUMNS.map((c) => {
      if (!c.sort) return h('th', { scope: 'col' }, c.label);
      const sorted = key === c.sort;
      return h('th', { scope: 'col', 'aria-sort': sorted ? (desc ? 'descending' : 'ascending') : 'none' },
        h('button', { type: 'button', class: 'sort', 'data-testid': 'sort-' + c.key,
          onclick: () => {
            st.sort = sorted && !desc ? '-' + c.sort : (c.sort === 'id' && sorted ? '' : c.sort);
            st.offset = 0;
            renderHead();
            navigate();
          } },
        c.label, h('span', { class: 'arrow', 'aria-hidden': 'true' }, sorted ? (desc ? '▼' : '▲') : '↕')));
    })));
  }

  let rows = [];
  let total = 0;
  let shownKey = null;
  const filtered = () => Object.keys(filterParams(st)).length > 0;
  function renderRows() {
    replace(tbody, rows.length ? rows.map((a) => h('tr', { 'data-testid': 'agent-row', 'data-agent-id': a.id },
      COLUMNS.map((c) => h('td', { class: c.key === 'id' ? 'id' : null }, c.cell(a)))))
      : h('tr', null, h('td', { class: 'empty', colspan: COLUMNS.length, 'data-testid': 'agents-empty' },
        filtered() ? 'No agent matches these filters.' : 'No agent has connected yet. Point an OpAMP agent at this server.')));
  }

  function renderPager() {
    const from = total ? st.offset + 1 : 0;
    const to = Math.min(st.offset + rows.length, total);
    const size = h('select', { 'aria-label': 'Rows per page', 'data-testid': 'agents-page-size' },
      [...new Set([...PAGE_SIZES, st.limit])].sort((x, y) => x - y).map((n) => h('option', { value: n, selected: n === st.limit }, `${n} per page`)));
    size.addEventListener('change', () => { st.limit = parseInt(size.value, 10); st.offset = 0; navigate(); });
    replace(pager,
      size,
      h('span', { 'data-testid': 'agents-range' }, `${from.toLocaleString()}–${to.toLocaleString()} of ${total.toLocaleString()}`),
      h('button', { type: 'button', class: 'small', 'data-testid': 'agents-prev', disabled: st.offset === 0,
        onclick: () => { st.offset = Math.max(0, st.offset - st.limit); navigate(); } }, '‹ Previous'),
      h('button', { type: 'button', class: 'small', 'data-testid': 'agents-next', disabled: st.offset + st.limit >= total,
        onclick: () => { st.offset += st.limit; navigate(); } }, 'Next ›'));
  }

  // bulkDialog previews action on the filtered agents (the server counts
  // them) and, when confirmed, acts on exactly that many or on none.
  async function bulkDialog(action, extra, { title, verb, danger }) {
    const params = filterParams(st);
    let preview;
    try {
      preview = await api.bulkAgents(params, { action, dry_run: true, ...extra });
    } catch (e) {
      toast(`Could not preview: ${e.message}`, 'bad');
      return;
    }
    const n = preview.matched;
    const what = action === 'forget' ? 'offline agent' : action === 'restart' ? 'online agent' : 'agent';
    const question = n === 0 ? `No ${what} matches these filters: nothing to ${verb.toLowerCase()}.`
      : `${verb} ${n.toLocaleString()} ${what}${n === 1 ? '' : 's'}?`;
    const ids = preview.ids.slice(0, 10);
    const body = h('div', null,
      h('p', { 'data-testid': 'bulk-count', 'data-count': n }, question),
      n ? h('ul', { class: 'mono small', 'data-testid': 'bulk-ids' }, ids.map((id) => h('li', null, h('a', { href: '/agents/' + encodeURIComponent(id) }, id))),
        n > ids.length ? h('li', { class: 'faint' }, `… and ${(n - ids.length).toLocaleString()} more`) : null) : null);
    let result;
    const ok = await openDialog({
      title, body, danger, testid: 'bulk-dialog', submitLabel: n ? `${verb} ${n.toLocaleString()}` : 'Close',
      onSubmit: async () => {
        if (!n) return true;
        result = await api.bulkAgents(params, { action, expect: n, ...extra });
        return true;
      },
    });
    if (!ok || !result) return;
    const failed = result.failed ? `; ${result.failed} failed${result.failures && result.failures.length ? ' (' + result.failures[0].error + ')' : ''}` : '';
    toast(`${verb}: ${result.done.toLocaleString()} of ${result.matched.toLocaleString()} agents${failed}.`, result.failed ? 'bad' : undefined);
    load();
  }

  function bulkAct(action) {
    if (action === 'restart') return bulkDialog('restart', {}, { title: 'Restart agents', verb: 'Restart', danger: true });
    return bulkDialog('forget', {}, { title: 'Forget offline agents', verb: 'Forget', danger: true });
  }

  async function bulkLabel() {
    const set = h('input', { type: 'text', id: 'bulk-set', class: 'mono', placeholder: 'team=obs, tier=1', 'data-testid': 'bulk-set' });
    const remove = h('input', { type: 'text', id: 'bulk-remove', class: 'mono', placeholder: 'old, stale', 'data-testid': 'bulk-remove' });
    let labels;
    const ok = await openDialog({
      title: 'Label agents', submitLabel: 'Preview', testid: 'bulk-label-dialog',
      body: h('div', null,
        h('div', { class: 'field' }, h('label', { for: 'bulk-set' }, 'Set labels'), set),
        h('div', { class: 'field' }, h('label', { for: 'bulk-remove' }, 'Remove labels'), remove)),
      onSubmit: () => {
        const setLabels = parseAttrs(set.value);
        const removeLabels = remove.value.split(',').map((s) => s.trim()).filter(Boolean);
        if (!Object.keys(setLabels).length && !removeLabels.length) throw new Error('Give labels to set or remove.');
        labels = { set_labels: setLabels, remove_labels: removeLabels };
        return true;
      },
    });
    if (ok) await bulkDialog('label', labels, { title: 'Label agents', verb: 'Label' });
  }

  let ctrl = null;
  let alive = true;
  async function load() {
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    let resp;
    try {
      resp = await api.agents({ ...filterParams(st), sort: st.sort, offset: st.offset, limit: st.limit }, { signal: ctrl.signal });
    } catch (e) {
      if (e.name === 'AbortError' || e.status === 401 || !alive) return;
      if (e.status === 400) {
        selector.setAttribute('aria-invalid', 'true');
        selErr.textContent = e.message;
      } else {
        selErr.textContent = 'Could not load agents: ' + e.message;
      }
      rows = []; total = 0; shownKey = null;
      renderRows(); renderPager();
      return;
    }
    if (!alive) return;
    selector.removeAttribute('aria-invalid');
    selErr.textContent = '';
    const fresh = list(resp, 'agents');
    const newTotal = typeof resp.total === 'number' ? resp.total : fresh.length;
    // Unchanged: keep the rows (a refresh must not eat a click).
    const key = JSON.stringify([fresh, newTotal, st]);
    if (key === shownKey) return;
    shownKey = key;
    rows = fresh;
    total = newTotal;
    if (rows.length === 0 && st.offset > 0 && total > 0) {
      st.offset = Math.max(0, Math.floor((total - 1) / st.limit) * st.limit);
      history.replaceState(null, '', toQuery(st));
      return load();
    }
    count.textContent = `${total.toLocaleString()} agent${total === 1 ? '' : 's'}`;
    renderRows();
    renderPager();
  }

  renderHead();
  replace(tbody, h('tr', null, h('td', { class: 'empty', colspan: COLUMNS.length }, 'Loading…')));
  load();
  const refresh = throttle(load, 1500);
  const off = on((ev) => { if ((ev.type || '').startsWith('agent.') || ev.type === 'resync') refresh(); });
  return () => { alive = false; off(); refresh.cancel(); typed.cancel(); if (ctrl) ctrl.abort(); };
}
