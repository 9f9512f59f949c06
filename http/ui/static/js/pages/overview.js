// Fleet overview: counts by connection, health, sync state, config status,
// version and type, refreshed live from the event stream.
import { fleetTelemetry } from './telemetry.js';
import { h, replace, throttle, timeEl, badge, shortId, SYNC_STATES, syncLabel } from '../dom.js';
import { api, list } from '../api.js';
import { on } from '../events.js';
import { recent, eventKind, seed } from '../activity.js';

const pct = (n, total) => (total > 0 ? Math.round((n / total) * 1000) / 10 : 0);
const num = (n) => (typeof n === 'number' ? n.toLocaleString() : '—');

function stat(label, value, opts = {}) {
  const tag = opts.href ? 'a' : 'div';
  return h(tag, { class: 'panel stat ' + (opts.kind || ''), href: opts.href, 'data-testid': opts.testid },
    h('div', { class: 'label' }, label),
    h('div', { class: 'value', 'data-testid': opts.testid && opts.testid + '-value' }, num(value)),
    h('div', { class: 'meta' }, opts.meta || '\u00a0'));
}

/** bars renders {name: count} as a sorted bar list with links. */
function bars(map, total, { testid, href, kind, empty }) {
  const entries = Object.entries(map || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (!entries.length) return h('p', { class: 'muted panel-body', 'data-testid': testid }, empty || 'No data yet.');
  const max = Math.max(...entries.map((e) => e[1]), 1);
  return h('ul', { class: 'bars', 'data-testid': testid },
    entries.map(([name, n]) => {
      const label = name === '' ? '(unknown)' : name;
      const link = href && name !== '' ? href(name) : null;
      return h('li', { 'data-testid': testid + '-item', 'data-name': name },
        h('span', { class: 'name', title: label }, link ? h('a', { href: link }, label) : label),
        h('span', { class: 'track', role: 'img', 'aria-label': `${label}: ${n} of ${total}` },
          h('span', { class: 'fill ' + (kind ? kind(name) : ''), style: `width:${(n / max) * 100}%` })),
        h('span', { class: 'count' }, num(n)));
    }));
}

function panel(title, body, extra) {
  return h('section', { class: 'panel', 'aria-label': title },
    h('div', { class: 'panel-head' }, h('h2', null, title), extra || null),
    h('div', { class: 'panel-body flush' }, body));
}

const syncBarKind = (s) => ({ in_sync: 'ok', failed: 'bad', rolled_back: 'bad', drifted: 'bad', pending: 'warn', applying: 'warn' }[s] || 'muted');
const configKind = (s) => ({ APPLIED: 'ok', FAILED: 'bad', APPLYING: 'warn' }[s] || 'muted');
const syncKey = (label) => (SYNC_STATES.find(([, l]) => l === label) || [label])[0];
// notInSync counts failed, rolled back and drifted agents.
const notInSync = (m) => ['failed', 'rolled_back', 'drifted'].reduce((n, k) => n + ((m || {})[k] || 0), 0);

export function mount(root, ctx) {
  ctx.setTitle('Overview');
  const body = h('div', { 'data-testid': 'overview' }, h('div', { class: 'skeleton' }, 'Loading…'));
  const updated = h('span', { class: 'faint', 'data-testid': 'overview-updated' });
  root.append(
    h('div', { class: 'page-head' },
      h('div', { class: 'titles' }, h('h1', { tabindex: '-1' }, 'Fleet overview'),
        h('div', { class: 'sub' }, 'Every agent connected to this control plane, live. ', updated))),
    body);
  const fleet = fleetTelemetry();
  root.append(fleet.node);

  let ctrl = null;
  let alive = true;
  let seeded = false;
  async function load() {
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    let s;
    try {
      s = await api.summary({ signal: ctrl.signal });
    } catch (e) {
      if (e.name === 'AbortError' || e.status === 401 || !alive) return;
      replace(body, h('div', { class: 'callout bad', role: 'alert' }, 'Could not load the summary: ', e.message));
      return;
    }
    if (!alive) return;
    if (!seeded) {
      seeded = true;
      try { seed(list(await api.events({ limit: 20 }, { signal: ctrl.signal }), 'events')); } catch { /* live events only */ }
      if (!alive) return;
    }
    render(s || {});
    replace(updated, 'Updated ', timeEl(new Date().toISOString()));
  }

  const activity = h('div');
  function renderActivity() {
    const evs = recent(10);
    replace(activity, evs.length
      ? h('table', { class: 'data', 'data-testid': 'activity' },
        h('tbody', null, evs.map((ev) => h('tr', null,
          h('td', { class: 'nowrap' }, badge(ev.type, eventKind(ev))),
          h('td', null, ev.agent_id && !/^0{8}-/.test(ev.agent_id)
            ? h('a', { href: '/agents/' + encodeURIComponent(ev.agent_id), class: 'mono' }, shortId(ev.agent_id)) : ''),
          h('td', { class: 'msg', title: ev.message || '' }, ev.message || ''),
          h('td', { class: 'nowrap right' }, timeEl(ev.time))))))
      : h('p', { class: 'muted panel-body' }, 'Events from the fleet appear here as they happen.'));
  }

  function render(s) {
    const total = s.total || 0;
    const cfg = s.by_config_status || {};
    const unknownHealth = Math.max(0, total - (s.healthy || 0) - (s.unhealthy || 0));
    replace(body,
      h('div', { class: 'stats' },
        stat('Agents', s.total, { href: '/agents', testid: 'stat-total', meta: 'known to Steward' }),
        stat('Online', s.online, { href: '/agents?online=true', testid: 'stat-online', kind: 'ok', meta: pct(s.online, total) + '% connected' }),
        stat('Offline', s.offline, { href: '/agents?online=false', testid: 'stat-offline', kind: s.offline ? 'warn' : '', meta: pct(s.offline, total) + '% disconnected' }),
        stat('Healthy', s.healthy, { href: '/agents?healthy=true', testid: 'stat-healthy', kind: 'ok', meta: pct(s.healthy, total) + '% of fleet' }),
        stat('Unhealthy', s.unhealthy, { href: '/agents?healthy=false', testid: 'stat-unhealthy', kind: s.unhealthy ? 'bad' : '', meta: pct(s.unhealthy, total) + '% of fleet' }),
        stat('Config failed', cfg.FAILED || 0, { href: '/agents?config=FAILED', testid: 'stat-config-failed', kind: cfg.FAILED ? 'bad' : '', meta: (cfg.APPLIED || 0).toLocaleString() + ' applied' }),
        stat('Not in sync', notInSync(s.by_sync), { href: '/agents?sync=failed,rolled_back,drifted', testid: 'stat-not-in-sync', kind: notInSync(s.by_sync) ? 'bad' : '',
          meta: ((s.by_sync || {}).rolled_back || 0).toLocaleString() + ' rolled back, ' + ((s.by_sync || {}).drifted || 0).toLocaleString() + ' drifted' })),
      h('div', { class: 'grid cols-3' },
        panel('Health and connection', h('div', { class: 'panel-body' },
          h('div', { class: 'ratio', role: 'img', 'aria-label': `${s.healthy || 0} healthy, ${s.unhealthy || 0} unhealthy, ${unknownHealth} not reporting` },
            h('span', { class: 'ok', style: `width:${pct(s.healthy, total)}%` }),
            h('span', { class: 'bad', style: `width:${pct(s.unhealthy, total)}%` }),
            h('span', { class: 'muted', style: `width:${pct(unknownHealth, total)}%` })),
          h('div', { class: 'kvs', 'data-testid': 'health-legend' },
            h('span', null, h('span', { class: 'k' }, 'Healthy'), num(s.healthy || 0)),
            h('span', null, h('span', { class: 'k' }, 'Unhealthy'), num(s.unhealthy || 0)),
            h('span', null, h('span', { class: 'k' }, 'Not reporting'), num(unknownHealth))),
          h('h3', { class: 'muted', style: 'margin-top:14px' }, 'Connection'),
          h('div', { class: 'ratio', role: 'img', 'aria-label': `${s.online || 0} online, ${s.offline || 0} offline` },
            h('span', { class: 'ok', style: `width:${pct(s.online, total)}%` }),
            h('span', { class: 'muted', style: `width:${pct(s.offline, total)}%` })),
          h('div', { class: 'kvs' },
            h('span', null, h('span', { class: 'k' }, 'Online'), num(s.online || 0)),
            h('span', null, h('span', { class: 'k' }, 'Offline'), num(s.offline || 0))))),
        panel('Sync state', bars(Object.fromEntries(Object.entries(s.by_sync || {}).map(([k, n]) => [syncLabel(k), n])), total,
          { testid: 'by-sync', kind: (l) => syncBarKind(syncKey(l)), href: (l) => '/agents?sync=' + encodeURIComponent(syncKey(l)), empty: 'No agents yet.' })),
        panel('Versions', bars(s.by_version, total, { testid: 'by-version', href: (n) => '/agents?version=' + encodeURIComponent(n) }))),
      h('div', { class: 'grid cols-2', style: 'margin-top:16px' },
        panel('Agent types', bars(s.by_type, total, { testid: 'by-type', href: (n) => '/agents?type=' + encodeURIComponent(n) })),
        panel('Remote config status', bars(cfg, total, { testid: 'by-config-status', kind: configKind, href: (st) => '/agents?config=' + encodeURIComponent(st), empty: 'No agent has reported a remote config status.' })),
        panel('Live activity', activity, h('a', { href: '/events', class: 'small' }, 'All events'))));
    renderActivity();
  }

  const refresh = throttle(load, 1000);
  const off = on((ev) => {
    renderActivity();
    if ((ev.type || '').startsWith('agent.') || ev.type === 'resync') refresh();
  });
  load();
  return () => { alive = false; off(); refresh.cancel(); fleet.stop(); if (ctrl) ctrl.abort(); };
}
