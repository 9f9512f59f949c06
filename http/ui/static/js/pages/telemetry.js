// The agents' own telemetry, as Steward's OTLP receiver keeps it: the
// Telemetry tab of the agent page (CPU, memory, throughput, drops, queue,
// recent own logs) and the fleet section of the overview (throughput,
// drops, the agents that dropped most). Each refreshes every 10 s while
// shown; stop() ends it.
import { h, replace, timeEl, fmtTime, shortId } from '../dom.js';
import { request } from '../api.js';
import { lineChart, fmtBytes, fmtNum } from '../chart.js';

const WINDOWS = [['15m', '15 minutes'], ['1h', '1 hour'], ['6h', '6 hours'], ['24h', '24 hours'], ['7d', '7 days']];
const COLORS = { received: '#2563eb', sent: '#15803d', refused: '#c81e1e', send_failed: '#b45309', cpu: '#7c3aed', memory_rss: '#0e7490', queue_size: '#2563eb', queue_capacity: '#7a8596' };
const REFRESH_MS = 10000;

const rate = (v) => fmtNum(v) + '/s';
const cores = (v) => (v * 100).toFixed(v < 0.1 ? 1 : 0) + ' %';

function serie(d, name, label) {
  return { name, label, values: (d.series && d.series[name]) || [], color: COLORS[name] };
}

/** total is the items counted over the window from a rate series. */
function total(d, name) {
  let sum = 0;
  for (const v of (d.series && d.series[name]) || []) if (v != null) sum += v * d.step_seconds;
  return sum;
}

function hasData(d) {
  return Object.values(d.series || {}).some((vs) => vs.some((v) => v != null));
}

function windowPicker(value, onChange, testid) {
  const sel = h('select', { 'aria-label': 'Time window', 'data-testid': testid, onchange: () => onChange(sel.value) },
    WINDOWS.map(([v, label]) => h('option', { value: v, selected: v === value ? true : null }, label)));
  return sel;
}

/** poller runs load now and every REFRESH_MS until stopped. */
function poller(load) {
  let timer = null, ctrl = null, stopped = false;
  async function tick() {
    if (stopped) return;
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    try { await load(ctrl.signal); } catch (e) { if (e.name !== 'AbortError') console.warn(e); }
    if (!stopped) timer = setTimeout(tick, REFRESH_MS);
  }
  return {
    now() { clearTimeout(timer); tick(); },
    stop() { stopped = true; clearTimeout(timer); if (ctrl) ctrl.abort(); },
  };
}

/** agentTelemetry is the Telemetry tab of agent id: {node, stop}. */
export function agentTelemetry(id) {
  let win = '1h';
  const body = h('div', { class: 'stack' }, h('div', { class: 'skeleton' }, 'Loading…'));
  const updated = h('span', { class: 'faint', 'data-testid': 'telemetry-updated' });
  const node = h('section', { class: 'panel', 'aria-label': 'Own telemetry', 'data-testid': 'agent-telemetry' },
    h('div', { class: 'panel-head' }, h('h2', null, 'Own telemetry'), h('span', { class: 'spacer' }), updated,
      windowPicker(win, (v) => { win = v; p.now(); }, 'telemetry-window')),
    h('div', { class: 'panel-body' }, body));
  const p = poller(async (signal) => {
    const base = '/agents/' + encodeURIComponent(id) + '/telemetry';
    const [d, logs] = await Promise.all([
      request('GET', base + '?window=' + win, undefined, { signal }),
      request('GET', base + '/logs', undefined, { signal }).catch(() => ({ logs: [] })),
    ]);
    render(d, (logs && logs.logs) || []);
  });
  function render(d, logs) {
    replace(updated, d.last_received ? h('span', null, 'last received ', timeEl(d.last_received)) : 'nothing received yet');
    if (!hasData(d)) {
      replace(body, h('p', { class: 'muted', 'data-testid': 'telemetry-empty' },
        'Steward has received none of this agent\'s own telemetry in this window. Offer it the "send own telemetry to Steward" preset under ',
        h('a', { href: '/admin/connection-settings' }, 'Connection settings'), '.'));
      return;
    }
    const rx = total(d, 'received'), tx = total(d, 'sent'), drops = total(d, 'refused') + total(d, 'send_failed');
    replace(body,
      h('div', { class: 'stats' },
        h('div', { class: 'stat' }, h('div', { class: 'label' }, 'Received'), h('div', { class: 'value', 'data-testid': 'telemetry-received-total', 'data-value': String(rx) }, fmtNum(rx)), h('div', { class: 'meta' }, 'items accepted by receivers')),
        h('div', { class: 'stat' }, h('div', { class: 'label' }, 'Sent'), h('div', { class: 'value', 'data-testid': 'telemetry-sent-total', 'data-value': String(tx) }, fmtNum(tx)), h('div', { class: 'meta' }, 'items sent by exporters')),
        h('div', { class: 'stat' + (drops ? ' bad' : '') }, h('div', { class: 'label' }, 'Dropped'), h('div', { class: 'value', 'data-testid': 'telemetry-dropped-total' }, fmtNum(drops)), h('div', { class: 'meta' }, 'refused or failed to send'))),
      h('div', { class: 'chart-grid-2' },
        lineChart({ title: 'Throughput (items/s)', start: d.start, step: d.step_seconds, fmt: rate, testid: 'chart-throughput',
          series: [serie(d, 'received', 'received'), serie(d, 'sent', 'sent')] }),
        lineChart({ title: 'Drops (items/s)', start: d.start, step: d.step_seconds, fmt: rate, testid: 'chart-drops',
          series: [serie(d, 'refused', 'refused'), serie(d, 'send_failed', 'send failed')] }),
        lineChart({ title: 'CPU (% of one core)', start: d.start, step: d.step_seconds, fmt: cores, testid: 'chart-cpu',
          series: [serie(d, 'cpu', 'CPU')] }),
        lineChart({ title: 'Memory (resident)', start: d.start, step: d.step_seconds, fmt: fmtBytes, testid: 'chart-memory',
          series: [serie(d, 'memory_rss', 'RSS')] }),
        lineChart({ title: 'Exporter queue (items)', start: d.start, step: d.step_seconds, fmt: fmtNum, testid: 'chart-queue',
          series: [serie(d, 'queue_size', 'size'), serie(d, 'queue_capacity', 'capacity')] })),
      logs.length ? h('details', { 'data-testid': 'telemetry-logs' }, h('summary', null, `Recent own logs (${logs.length})`),
        h('table', { class: 'data' }, h('tbody', null, logs.slice().reverse().map((l) => h('tr', null,
          h('td', { class: 'nowrap', title: fmtTime(l.time) }, timeEl(l.time)),
          h('td', { class: 'nowrap' }, l.severity || ''),
          h('td', { class: 'msg mono' }, l.body)))))) : null);
  }
  p.now();
  return { node, stop: p.stop };
}

/** fleetTelemetry is the overview's fleet section: {node, stop}. */
export function fleetTelemetry() {
  let win = '1h';
  const body = h('div', { class: 'panel-body' });
  const node = h('section', { class: 'panel', 'aria-label': 'Fleet telemetry', 'data-testid': 'fleet-telemetry' },
    h('div', { class: 'panel-head' }, h('h2', null, 'Fleet telemetry'), h('span', { class: 'spacer' }),
      windowPicker(win, (v) => { win = v; p.now(); }, 'fleet-telemetry-window')), body);
  const p = poller(async (signal) => {
    render(await request('GET', '/telemetry?top=10&window=' + win, undefined, { signal }));
  });
  function render(d) {
    if (!hasData(d)) {
      replace(body, h('p', { class: 'muted', 'data-testid': 'fleet-telemetry-empty' },
        'No agent has sent its own telemetry to Steward in this window. The "send own telemetry to Steward" preset under ',
        h('a', { href: '/admin/connection-settings' }, 'Connection settings'), ' offers it to agents.'));
      return;
    }
    replace(body, h('div', { class: 'chart-grid-2' },
      lineChart({ title: `Fleet throughput (items/s, ${d.agents} agents)`, start: d.start, step: d.step_seconds, fmt: rate, testid: 'chart-fleet-throughput',
        series: [serie(d, 'received', 'received'), serie(d, 'sent', 'sent')] }),
      lineChart({ title: 'Fleet drops (items/s)', start: d.start, step: d.step_seconds, fmt: rate, testid: 'chart-fleet-drops',
        series: [serie(d, 'refused', 'refused'), serie(d, 'send_failed', 'send failed')] })),
    h('h3', null, 'Top agents by drops'),
    d.top_drops && d.top_drops.length
      ? h('table', { class: 'data', 'data-testid': 'top-drops' },
        h('thead', null, h('tr', null, h('th', null, 'Agent'), h('th', { class: 'right' }, 'Refused'), h('th', { class: 'right' }, 'Send failed'))),
        h('tbody', null, d.top_drops.map((t) => h('tr', null,
          h('td', null, h('a', { href: '/agents/' + encodeURIComponent(t.agent_id) + '?tab=telemetry', class: 'mono' }, shortId(t.agent_id))),
          h('td', { class: 'right' }, fmtNum(t.refused)), h('td', { class: 'right' }, fmtNum(t.send_failed))))))
      : h('p', { class: 'muted', 'data-testid': 'top-drops-none' }, 'No agent dropped items in this window.'));
  }
  p.now();
  return { node, stop: p.stop };
}
