// Agent list: search, label selector, online/health filters, pagination and
// sortable columns; the current page refreshes live.
import { h, replace, debounce, throttle, timeEl, badge, configStatusKind, agentName, attr, shortId, SYNC_STATES, syncLabel, syncKind, configsText } from '../dom.js';
import { api, list } from '../api.js';
import { on } from '../events.js';

const PAGE_SIZES = [25, 50, 100, 250];

// Columns: key, header, value for sorting, cell renderer.
const COLUMNS = [
  { key: 'status', label: 'Status', value: (a) => (a.online ? 0 : 1),
    cell: (a) => badge(a.online ? 'Online' : 'Offline', a.online ? 'ok' : '', 'agent-online') },
  { key: 'name', label: 'Name', value: (a) => agentName(a).toLowerCase(),
    cell: (a) => h('a', { href: '/agents/' + encodeURIComponent(a.id), 'data-testid': 'agent-link' }, agentName(a)) },
  { key: 'id', label: 'Instance', value: (a) => a.id, cell: (a) => h('span', { class: 'mono', title: a.id }, shortId(a.id)) },
  { key: 'version', label: 'Version', value: (a) => attr(a, 'service.version'), cell: (a) => attr(a, 'service.version') || h('span', { class: 'faint' }, '—') },
  { key: 'host', label: 'Host', value: (a) => attr(a, 'host.name'), cell: (a) => attr(a, 'host.name') || h('span', { class: 'faint' }, '—') },
  { key: 'health', label: 'Health', value: (a) => (a.health ? (a.health.healthy ? 0 : 1) : 2),
    cell: (a) => (a.health ? badge(a.health.healthy ? 'Healthy' : 'Unhealthy', a.health.healthy ? 'ok' : 'bad', 'agent-health')
      : badge('Unknown', '', 'agent-health')) },
  { key: 'config', label: 'Config', value: (a) => (a.remote_config_status ? a.remote_config_status.status : ''),
    cell: (a) => {
      const st = a.remote_config_status;
      if (!st || !st.status || st.status === 'UNSET') return h('span', { class: 'faint' }, '—');
      return h('span', { title: st.error_message || '' }, badge(st.status, configStatusKind(st.status), 'agent-config-status'));
    } },
  { key: 'sync', label: 'Sync', value: (a) => SYNC_STATES.findIndex(([k]) => k === (a.sync && a.sync.state)),
    cell: (a) => {
      const sy = a.sync || {};
      const title = [sy.desired ? 'Desired: ' + configsText(sy.desired) : 'Nothing assigned',
        sy.running ? 'Running: ' + configsText(sy.running) : (sy.running_hash ? 'Running: not from Steward' : ''),
        sy.error || ''].filter(Boolean).join('\n');
      return h('span', { title }, badge(syncLabel(sy.state), syncKind(sy.state), 'agent-sync'));
    } },
  { key: 'desired', label: 'Desired', value: (a) => configsText(a.sync && a.sync.desired),
    cell: (a) => (a.sync && a.sync.desired ? h('span', { class: 'mono' }, configsText(a.sync.desired)) : h('span', { class: 'faint' }, '—')) },
  { key: 'labels', label: 'Labels', value: (a) => Object.keys(a.labels || {}).length,
    cell: (a) => {
      const ls = Object.entries(a.labels || {});
      if (!ls.length) return h('span', { class: 'faint' }, '—');
      return h('span', { class: 'chips' }, ls.slice(0, 3).map(([k, v]) => h('span', { class: 'chip label-chip' }, `${k}=${v}`)),
        ls.length > 3 ? h('span', { class: 'faint' }, `+${ls.length - 3}`) : null);
    } },
  { key: 'last_seen', label: 'Last seen', value: (a) => a.last_seen || '', cell: (a) => timeEl(a.last_seen) },
];

function readState(query) {
  const limit = parseInt(query.get('limit'), 10);
  return {
    q: query.get('q') || '',
    selector: query.get('selector') || '',
    online: query.get('online') || '',
    healthy: query.get('healthy') || '',
    sync: query.get('sync') || '',
    offset: Math.max(0, parseInt(query.get('offset'), 10) || 0),
    limit: limit >= 1 && limit <= 1000 ? limit : 50,
    sort: query.get('sort') || '',
    dir: query.get('dir') === 'desc' ? 'desc' : 'asc',
  };
}

function toQuery(st) {
  const u = new URLSearchParams();
  for (const k of ['q', 'selector', 'online', 'healthy', 'sync', 'sort']) if (st[k]) u.set(k, st[k]);
  if (st.sort && st.dir === 'desc') u.set('dir', 'desc');
  if (st.offset) u.set('offset', st.offset);
  if (st.limit !== 50) u.set('limit', st.limit);
  const s = u.toString();
  return '/agents' + (s ? '?' + s : '');
}

export function mount(root, ctx) {
  ctx.setTitle('Agents');
  const st = readState(ctx.query);

  const q = h('input', { type: 'search', id: 'f-q', value: st.q, placeholder: 'Name, id, host or version', 'data-testid': 'agents-search' });
  const selector = h('input', { type: 'text', id: 'f-sel', class: 'mono', value: st.selector, placeholder: 'env=prod,region in (eu,us)', 'data-testid': 'agents-selector', 'aria-describedby': 'f-sel-err' });
  const selErr = h('div', { id: 'f-sel-err', class: 'error-text', 'data-testid': 'agents-selector-error' });
  const online = h('select', { id: 'f-online', 'data-testid': 'agents-online' },
    h('option', { value: '' }, 'Any'), h('option', { value: 'true' }, 'Online'), h('option', { value: 'false' }, 'Offline'));
  online.value = st.online;
  const healthy = h('select', { id: 'f-healthy', 'data-testid': 'agents-healthy' },
    h('option', { value: '' }, 'Any'), h('option', { value: 'true' }, 'Healthy'), h('option', { value: 'false' }, 'Unhealthy'));
  healthy.value = st.healthy;
  const sync = h('select', { id: 'f-sync', 'data-testid': 'agents-sync' },
    h('option', { value: '' }, 'Any'), SYNC_STATES.map(([k, label]) => h('option', { value: k }, label)));
  sync.value = st.sync;

  const count = h('span', { class: 'muted', 'data-testid': 'agents-count' });
  const thead = h('thead');
  const tbody = h('tbody', { 'data-testid': 'agents-rows' });
  const pager = h('div', { class: 'pager' });
  const table = h('table', { class: 'data', 'data-testid': 'agents-table', 'aria-label': 'Agents' }, thead, tbody);

  root.append(
    h('div', { class: 'page-head' },
      h('div', { class: 'titles' }, h('h1', { tabindex: '-1' }, 'Agents'), h('div', { class: 'sub' }, count))),
    h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Filter agents', onsubmit: (e) => { e.preventDefault(); apply(); } },
      h('div', { class: 'field grow' }, h('label', { for: 'f-q' }, 'Search'), q),
      h('div', { class: 'field grow' }, h('label', { for: 'f-sel' }, 'Label selector'), selector),
      h('div', { class: 'field' }, h('label', { for: 'f-online' }, 'Connection'), online),
      h('div', { class: 'field' }, h('label', { for: 'f-healthy' }, 'Health'), healthy),
      h('div', { class: 'field' }, h('label', { for: 'f-sync' }, 'Sync'), sync),
      h('button', { type: 'submit', class: 'primary', 'data-testid': 'agents-apply' }, 'Apply')),
    selErr,
    h('div', { class: 'panel' }, h('div', { class: 'table-wrap' }, table), pager));

  function apply(patch = {}) {
    Object.assign(st, { q: q.value.trim(), selector: selector.value.trim(), online: online.value, healthy: healthy.value, sync: sync.value, offset: 0 }, patch);
    history.replaceState(null, '', toQuery(st));
    load();
  }
  const typed = debounce(() => apply(), 350);
  q.addEventListener('input', typed);
  online.addEventListener('change', () => apply());
  healthy.addEventListener('change', () => apply());
  sync.addEventListener('change', () => apply());

  function renderHead() {
    replace(thead, h('tr', null, COLUMNS.map((c) => {
      const sorted = st.sort === c.key;
      return h('th', { scope: 'col', 'aria-sort': sorted ? (st.dir === 'asc' ? 'ascending' : 'descending') : 'none' },
        h('button', { type: 'button', class: 'sort', 'data-testid': 'sort-' + c.key,
          onclick: () => {
            if (st.sort === c.key) st.dir = st.dir === 'asc' ? 'desc' : 'asc';
            else { st.sort = c.key; st.dir = 'asc'; }
            history.replaceState(null, '', toQuery(st));
            renderHead();
            renderRows();
          } },
        c.label, h('span', { class: 'arrow', 'aria-hidden': 'true' }, sorted ? (st.dir === 'asc' ? '▲' : '▼') : '↕')));
    })));
  }

  let rows = [];
  let total = 0;
  let shownKey = null;
  function renderRows() {
    const col = COLUMNS.find((c) => c.key === st.sort);
    const view = rows.slice();
    if (col) {
      view.sort((a, b) => {
        const x = col.value(a), y = col.value(b);
        const r = x < y ? -1 : x > y ? 1 : 0;
        return st.dir === 'asc' ? r : -r;
      });
    }
    replace(tbody, view.length ? view.map((a) => h('tr', { 'data-testid': 'agent-row', 'data-agent-id': a.id },
      COLUMNS.map((c) => h('td', { class: c.key === 'id' ? 'id' : null }, c.cell(a)))))
      : h('tr', null, h('td', { class: 'empty', colspan: COLUMNS.length, 'data-testid': 'agents-empty' },
        st.q || st.selector || st.online || st.healthy || st.sync ? 'No agent matches these filters.' : 'No agent has connected yet. Point an OpAMP agent at this server.')));
  }

  function renderPager() {
    const from = total ? st.offset + 1 : 0;
    const to = Math.min(st.offset + rows.length, total);
    const size = h('select', { 'aria-label': 'Rows per page', 'data-testid': 'agents-page-size' },
      [...new Set([...PAGE_SIZES, st.limit])].sort((x, y) => x - y).map((n) => h('option', { value: n, selected: n === st.limit }, `${n} per page`)));
    size.addEventListener('change', () => { st.limit = parseInt(size.value, 10); st.offset = 0; history.replaceState(null, '', toQuery(st)); load(); });
    replace(pager,
      size,
      h('span', { 'data-testid': 'agents-range' }, `${from.toLocaleString()}–${to.toLocaleString()} of ${total.toLocaleString()}`),
      h('button', { type: 'button', class: 'small', 'data-testid': 'agents-prev', disabled: st.offset === 0,
        onclick: () => { st.offset = Math.max(0, st.offset - st.limit); history.replaceState(null, '', toQuery(st)); load(); } }, '‹ Previous'),
      h('button', { type: 'button', class: 'small', 'data-testid': 'agents-next', disabled: st.offset + st.limit >= total,
        onclick: () => { st.offset += st.limit; history.replaceState(null, '', toQuery(st)); load(); } }, 'Next ›'));
  }

  let ctrl = null;
  let alive = true;
  async function load() {
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    let resp;
    try {
      resp = await api.agents({ q: st.q, selector: st.selector, online: st.online, healthy: st.healthy, sync: st.sync, offset: st.offset, limit: st.limit }, { signal: ctrl.signal });
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
