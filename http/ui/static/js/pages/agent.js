// Agent page: everything the agent reported, its operator labels, its
// history, and the actions (restart, push a config). Refreshes live.
import { h, replace, throttle, timeEl, fmtTime, badge, configStatusKind, agentName, attr, attrValue, shortHash, copyText, toast, fileLabel, shortId, syncLabel, syncKind, configsText } from '../dom.js';
import { api, list } from '../api.js';
import { on } from '../events.js';
import { openDialog, confirmDialog } from '../dialog.js';
import { eventKind } from '../activity.js';
import { agentTelemetry } from './telemetry.js';
import { eventMessage, eventDetails } from '../eventview.js';
import { loadAgentConfig, versionNode, assignmentNames, diffPanelBody, assignmentsTable } from './agent/config.js';
import { loadCertificates, certificatesTable } from './agent/certificates.js';

const ALL_CAPS = [
  'ReportsStatus', 'AcceptsRemoteConfig', 'ReportsEffectiveConfig', 'AcceptsPackages',
  'ReportsPackageStatuses', 'ReportsOwnTraces', 'ReportsOwnMetrics', 'ReportsOwnLogs',
  'AcceptsOpAMPConnectionSettings', 'AcceptsOtherConnectionSettings', 'AcceptsRestartCommand',
  'ReportsHealth', 'ReportsRemoteConfig', 'ReportsHeartbeat', 'ReportsAvailableComponents',
  'ReportsConnectionSettingsStatus',
];
const TABS = [
  { key: 'overview', label: 'Overview' },
  { key: 'health', label: 'Health' },
  { key: 'config', label: 'Configuration' },
  { key: 'packages', label: 'Packages' },
  { key: 'telemetry', label: 'Telemetry' },
  { key: 'events', label: 'Events' },
];

function panel(title, body, opts = {}) {
  return h('section', { class: 'panel', 'aria-label': title, 'data-testid': opts.testid },
    h('div', { class: 'panel-head' }, h('h2', null, title), opts.extra || null),
    h('div', { class: 'panel-body' + (opts.flush ? ' flush' : '') }, body));
}

// syncDetail says what the agent should run and what it runs.
function syncDetail(sy) {
  const want = sy.desired ? 'desired ' + configsText(sy.desired) : 'nothing assigned';
  const run = sy.running ? 'running ' + configsText(sy.running)
    : sy.running_hash ? 'running a config not from Steward (' + shortHash(sy.running_hash) + ')' : 'no remote config reported';
  return want + ', ' + run;
}

/** healthBadge: unknown for an offline agent, whatever it reported last. */
function healthBadge(a, testid) {
  const st = a.health_state || 'unknown';
  return badge(st === 'healthy' ? 'Healthy' : st === 'unhealthy' ? 'Unhealthy' : 'Health unknown',
    st === 'healthy' ? 'ok' : st === 'unhealthy' ? 'bad' : '', testid);
}

/** healthSummary is the overview's health: state, why unhealthy, the last error. */
function healthSummary(a, caps) {
  const st = a.health_state || 'unknown';
  const why = st === 'unknown' ? (!a.online ? 'The agent is offline: what it reported last may no longer hold.'
    : caps.has('ReportsHealth') ? 'The agent has not reported its health yet.' : 'The agent does not report health.') : '';
  return kv([
    ['State', healthBadge(a, 'agent-health-state')],
    st === 'unhealthy' ? ['Reason', h('span', { class: 'health-reason', 'data-testid': 'agent-health-reason' }, a.health_reason || 'The agent gave no reason.')] : null,
    why ? ['', h('span', { class: 'muted', 'data-testid': 'agent-health-note' }, why)] : null,
    a.health && a.health.last_error && a.health.last_error !== a.health_reason ? ['Last error', h('span', { class: 'error-text' }, a.health.last_error)] : null,
    a.health && a.health.status ? ['Status', a.health.status] : null,
    a.health && a.health.status_time ? ['Reported', timeEl(a.health.status_time)] : null,
  ]);
}

function kv(rows) {
  return h('table', { class: 'kv' }, h('tbody', null, rows.filter(Boolean).map(([k, v, tid]) =>
    h('tr', null, h('th', { scope: 'row' }, k), h('td', { 'data-testid': tid }, v === '' || v == null ? h('span', { class: 'faint' }, '—') : v)))));
}

function attrsTable(list, testid) {
  if (!list || !list.length) return h('p', { class: 'muted', 'data-testid': testid }, 'None reported.');
  return h('table', { class: 'kv', 'data-testid': testid }, h('tbody', null, list.map((a) =>
    h('tr', null, h('th', { scope: 'row', class: 'mono' }, a.key), h('td', { class: 'mono' }, attrValue(a.value))))));
}

function lineCount(text) {
  if (!text) return 'empty';
  const n = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
  return n === 1 ? '1 line' : `${n} lines`;
}

/** files renders a ConfigMap: one monospaced block per file, with copy. */
/** REDACTED is what the server shows in place of a secret (steward.RedactedSecret). */
const REDACTED = '(redacted)';

export function configFiles(map, testid) {
  const names = Object.keys(map || {}).sort();
  if (!names.length) return h('p', { class: 'muted', 'data-testid': testid }, 'No files.');
  return h('div', { 'data-testid': testid }, names.map((n) => {
    const f = map[n] || {};
    const text = f.encoding === 'base64' ? `(${(f.body || '').length} bytes of binary data, base64)\n${f.body || ''}` : (f.body || '');
    return h('div', { class: 'file' },
      h('div', { class: 'file-head' },
        h('span', { class: 'fname' }, fileLabel(n)),
        f.content_type ? h('span', { class: 'badge plain' }, f.content_type) : null,
        h('span', { class: 'faint' }, lineCount(text)),
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'small', 'data-testid': 'copy-file', 'aria-label': 'Copy ' + fileLabel(n),
          onclick: async () => toast((await copyText(f.body || '')) ? 'Copied to the clipboard.' : 'Copy failed.') }, 'Copy')),
      text.includes(REDACTED) ? h('p', { class: 'faint', 'data-testid': 'redacted-note' },
        `Secret values are shown as ${REDACTED}; an admin can read them through the API with ?reveal=true.`) : null,
      h('pre', { class: 'code', tabindex: '0', 'aria-label': fileLabel(n) }, text));
  }));
}

function healthNode(name, c) {
  const kids = Object.keys(c.components || {}).sort();
  return h('li', { 'data-testid': 'health-node', 'data-name': name },
    h('div', { class: 'node' },
      badge(c.healthy ? 'healthy' : 'unhealthy', c.healthy ? 'ok' : 'bad'),
      h('span', { class: 'nm' }, name),
      c.status ? h('span', { class: 'muted' }, c.status) : null,
      c.start_time ? h('span', { class: 'faint' }, 'since ', timeEl(c.start_time)) : null,
      c.last_error ? h('span', { class: 'err' }, c.last_error) : null),
    kids.length ? h('ul', null, kids.map((k) => healthNode(k, c.components[k]))) : null);
}

function labelsEditor(agent, onSaved) {
  const rows = h('div');
  const err = h('p', { class: 'error-text', role: 'alert', hidden: true, 'data-testid': 'labels-error' });
  const save = h('button', { type: 'submit', class: 'primary small', 'data-testid': 'labels-save', disabled: true }, 'Save labels');
  const form = h('form', { class: 'labels-editor', 'data-testid': 'labels-editor', 'aria-label': 'Labels' });
  const ed = { dirty: false, node: form };
  const markDirty = () => { ed.dirty = true; save.disabled = false; };
  function addRow(k = '', v = '') {
    const i = rows.children.length;
    const key = h('input', { type: 'text', class: 'mono', value: k, placeholder: 'key', 'aria-label': `Label ${i + 1} key`, 'data-testid': 'label-key', oninput: markDirty });
    const val = h('input', { type: 'text', class: 'mono', value: v, placeholder: 'value', 'aria-label': `Label ${i + 1} value`, 'data-testid': 'label-value', oninput: markDirty });
    const row = h('div', { class: 'row' }, key, val,
      h('button', { type: 'button', class: 'small danger', 'aria-label': `Remove label ${i + 1}`, onclick: () => { row.remove(); markDirty(); } }, 'Remove'));
    rows.append(row);
    return key;
  }
  for (const [k, v] of Object.entries(agent.labels || {}).sort()) addRow(k, v);
  form.append(
    h('p', { class: 'muted', style: 'margin-top:0' }, 'Operator labels are matched by assignment selectors along with the attributes the agent reports.'),
    rows,
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'small', 'data-testid': 'label-add', onclick: () => { addRow().focus(); markDirty(); } }, 'Add label'),
      save),
    err);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const labels = {};
    for (const r of rows.children) {
      const [k, v] = r.querySelectorAll('input');
      const key = k.value.trim();
      if (!key) continue;
      if (key in labels) { err.textContent = `Duplicate label key "${key}".`; err.hidden = false; return; }
      labels[key] = v.value;
    }
    save.disabled = true;
    err.hidden = true;
    try {
      await api.setLabels(agent.id, labels);
      ed.dirty = false;
      toast('Labels saved.');
      onSaved();
    } catch (ex) {
      err.textContent = ex.message;
      err.hidden = false;
      save.disabled = false;
    }
  });
  return ed;
}

export function mount(root, ctx) {
  const id = ctx.params.id;
  let tab = TABS.some((t) => t.key === ctx.query.get('tab')) ? ctx.query.get('tab') : 'overview';
  const s = { agent: null, events: [], config: null, certs: [], certsError: '' };
  let labels = null;
  let alive = true;
  let ctrl = null;

  const head = h('div', { class: 'page-head' });
  const tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Agent details' });
  const panels = {};
  for (const t of TABS) panels[t.key] = h('div', { role: 'tabpanel', id: 'tp-' + t.key, 'aria-labelledby': 'tab-' + t.key, 'data-testid': 'tab-panel-' + t.key, tabindex: '0' });
  root.append(h('div', { 'data-testid': 'agent-page', 'data-agent-id': id }, head, tabs, Object.values(panels)));
  // The Telemetry tab keeps itself up to date (pages/telemetry.js).
  const telemetry = agentTelemetry(id);
  panels.telemetry.append(telemetry.node);
  replace(head, h('div', { class: 'skeleton' }, 'Loading…'));

  function selectTab(key, focus) {
    tab = key;
    const u = new URL(location.href);
    if (key === 'overview') u.searchParams.delete('tab'); else u.searchParams.set('tab', key);
    history.replaceState(null, '', u.pathname + u.search);
    renderTabs(focus);
  }
  // Tabs, header and actions are built once and updated in place, so a
  // live refresh never swaps an element out from under a click.
  const tabButtons = TABS.map((t, i) => {
    const count = h('span', { class: 'count', hidden: true });
    const b = h('button', { type: 'button', role: 'tab', id: 'tab-' + t.key, 'aria-controls': 'tp-' + t.key, 'data-testid': 'tab-' + t.key,
      onclick: () => selectTab(t.key),
      onkeydown: (e) => {
        let j = null;
        if (e.key === 'ArrowRight') j = (i + 1) % TABS.length;
        else if (e.key === 'ArrowLeft') j = (i - 1 + TABS.length) % TABS.length;
        else if (e.key === 'Home') j = 0;
        else if (e.key === 'End') j = TABS.length - 1;
        if (j !== null) { e.preventDefault(); selectTab(TABS[j].key, true); }
      } }, t.label, count);
    b.count = count;
    return b;
  });
  tabs.append(...tabButtons);
  function renderTabs(focus) {
    TABS.forEach((t, i) => {
      const b = tabButtons[i];
      const sel = t.key === tab;
      b.setAttribute('aria-selected', String(sel));
      b.tabIndex = sel ? 0 : -1;
      if (t.key === 'events') {
        b.count.textContent = String(s.events.length);
        b.count.hidden = !s.events.length;
      }
      panels[t.key].hidden = !sel;
    });
    if (focus) tabButtons[TABS.findIndex((t) => t.key === tab)].focus();
  }

  let hd = null;
  function buildHead() {
    const x = {
      crumb: h('span'),
      name: h('h1', { tabindex: '-1', 'data-testid': 'agent-name' }),
      badges: h('span', { class: 'inline' }),
      sub: h('div', { class: 'sub' }),
      copy: h('button', { type: 'button', class: 'link small', 'aria-label': 'Copy the instance id', onclick: async () => toast((await copyText(id)) ? 'Instance id copied.' : 'Copy failed.') }, 'copy'),
      push: h('button', { type: 'button', class: 'primary', 'data-testid': 'push-config', onclick: pushConfig }, 'Push config'),
      restart: h('button', { type: 'button', 'data-testid': 'restart', onclick: restart }, 'Restart'),
      forget: h('button', { type: 'button', class: 'danger', 'data-testid': 'forget', onclick: forget }, 'Forget'),
    };
    replace(head,
      h('div', { class: 'titles' },
        h('div', { class: 'breadcrumb' }, h('a', { href: '/agents' }, 'Agents'), ' / ', x.crumb),
        h('div', { class: 'inline' }, x.name, x.badges),
        x.sub),
      h('div', { class: 'actions' }, x.push, x.restart, x.forget));
    return x;
  }

  async function load() {
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    const o = { signal: ctrl.signal };
    let agent;
    try {
      agent = await api.agent(id, o);
    } catch (e) {
      if (e.name === 'AbortError' || e.status === 401 || !alive) return;
      hd = null;
      replace(head, h('div', { class: 'titles' },
        h('div', { class: 'breadcrumb' }, h('a', { href: '/agents' }, 'Agents')),
        h('h1', null, e.status === 404 ? 'Agent not found' : 'Could not load the agent'),
        h('p', { class: 'muted', 'data-testid': 'agent-error' }, e.message)));
      tabs.hidden = true;
      for (const p of Object.values(panels)) p.hidden = true;
      return;
    }
    // The rest is best effort: a failure leaves that section empty with a note.
    const [evs, cfg, certs] = await Promise.allSettled([
      api.agentEvents(id, 200, o), loadAgentConfig(id, o), loadCertificates(id, o),
    ]);
    if (!alive || o.signal.aborted) return;
    s.agent = agent;
    s.events = evs.status === 'fulfilled' ? list(evs.value, 'events') : [];
    s.config = cfg.status === 'fulfilled' ? cfg.value : { error: cfg.reason && cfg.reason.message };
    s.certs = certs.status === 'fulfilled' ? certs.value : [];
    s.certsError = certs.status === 'fulfilled' ? '' : certs.reason && certs.reason.message;
    render();
  }

  function render() {
    const a = s.agent;
    ctx.setTitle(agentName(a));
    tabs.hidden = false;
    const rcs = a.remote_config_status;
    const canRestart = (a.capabilities && (a.capabilities.names || []).includes('AcceptsRestartCommand'));
    const canConfig = (a.capabilities && (a.capabilities.names || []).includes('AcceptsRemoteConfig'));
    if (!hd) hd = buildHead();
    hd.crumb.textContent = shortId(a.id);
    hd.name.textContent = agentName(a);
    replace(hd.badges,
      badge(a.online ? 'Online' : 'Offline', a.online ? 'ok' : '', 'agent-online'),
      healthBadge(a, 'agent-health'));
    replace(hd.sub,
      h('span', { class: 'mono', 'data-testid': 'agent-id' }, a.id),
      hd.copy,
      attr(a, 'service.version') ? h('span', null, 'v', attr(a, 'service.version')) : null,
      attr(a, 'host.name') ? h('span', null, attr(a, 'host.name')) : null,
      h('span', null, 'last seen ', timeEl(a.last_seen)));
    hd.push.disabled = !canConfig;
    hd.push.title = canConfig ? 'Assign a configuration to this agent' : 'The agent does not accept remote configuration';
    hd.forget.hidden = a.online;
    hd.forget.title = 'Remove this offline agent and its history; it reappears if it connects again';
    hd.restart.disabled = !canRestart || !a.online;
    hd.restart.title = !canRestart ? 'The agent does not accept the restart command' : (!a.online ? 'The agent is offline' : 'Ask the agent to restart');
    renderTabs();

    // Overview.
    const labelsKey = JSON.stringify(Object.entries(a.labels || {}).sort());
    if (!labels || (!labels.dirty && labels.key !== labelsKey)) {
      labels = labelsEditor(a, load);
      labels.key = labelsKey;
    }
    const caps = new Set((a.capabilities && a.capabilities.names) || []);
    const css = a.connection_settings_status;
    replace(panels.overview, h('div', { class: 'grid cols-2' },
      h('div', { class: 'stack' },
        panel('Remote configuration', h('div', { class: 'stack' },
          kv([
            ['Sync', a.sync ? h('span', null, badge(syncLabel(a.sync.state), syncKind(a.sync.state), 'agent-sync'), ' ',
              h('span', { class: 'muted', 'data-testid': 'agent-sync-detail' }, syncDetail(a.sync))) : ''],
            ['Desired', s.config && s.config.error ? h('span', { class: 'error-text' }, s.config.error) : versionNode(s.config && s.config.desired, 'agent-desired-config', 'Nothing assigned')],
            ['Running', versionNode(s.config && s.config.running, 'agent-running-config', 'No remote config reported')],
            ['Assignments', assignmentNames(s.config)],
            ['Status', rcs && rcs.status ? badge(rcs.status, configStatusKind(rcs.status), 'remote-config-status') : h('span', { class: 'faint', 'data-testid': 'remote-config-status' }, 'Not reported')],
          ]),
          rcs && rcs.error_message ? h('div', { class: 'callout bad', role: 'alert', 'data-testid': 'remote-config-error' }, 'The agent could not apply its configuration:', h('pre', null, rcs.error_message))
            : a.sync && a.sync.state === 'rolled_back' && a.sync.error ? h('div', { class: 'callout bad', role: 'alert', 'data-testid': 'remote-config-error' },
              'The desired configuration failed and the agent rolled back to an earlier one:', h('pre', null, a.sync.error)) : null), { testid: 'remote-config-panel' }),
        panel('Health', healthSummary(a, caps), { testid: 'agent-health-panel' }),
        panel('Connection', kv([
          ['Status', badge(a.online ? 'Online' : 'Offline', a.online ? 'ok' : '')],
          ['Transport', a.transport || ''],
          ['Remote address', a.remote_addr ? h('span', { class: 'mono' }, a.remote_addr) : ''],
          ['Connected', a.connected_at ? h('span', { title: fmtTime(a.connected_at) }, timeEl(a.connected_at)) : ''],
          !a.online ? ['Disconnected', timeEl(a.disconnected_at)] : null,
          ['Last seen', timeEl(a.last_seen)],
          ['First seen', timeEl(a.created_at)],
          ['Sequence number', String(a.sequence_num ?? '')],
          a.replica ? ['Server replica', a.replica] : null,
          ['Connection settings', css ? h('span', null, badge(css.status || 'UNSET', css.status === 'APPLIED' ? 'ok' : css.status === 'FAILED' ? 'bad' : ''), css.error_message ? h('div', { class: 'error-text' }, css.error_message) : null) : '', 'connection-settings-status'],
        ])),
        panel('Labels', labels.node, { testid: 'labels-panel' }),
        panel('Client certificates', certificatesTable(s.certs, s.certsError, load), { flush: true, testid: 'agent-certificates-panel' })),
      h('div', { class: 'stack' },
        panel('Identifying attributes', attrsTable(a.description && a.description.identifying_attributes, 'identifying-attributes')),
        panel('Non-identifying attributes', attrsTable(a.description && a.description.non_identifying_attributes, 'non-identifying-attributes')),
        panel('Capabilities', h('div', { class: 'chips', 'data-testid': 'capabilities' },
          ALL_CAPS.map((c) => h('span', { class: 'chip ' + (caps.has(c) ? 'on' : 'off'), title: caps.has(c) ? 'Supported' : 'Not supported' }, c))),
        { extra: h('span', { class: 'faint mono' }, '0x' + ((a.capabilities && a.capabilities.bits) || 0).toString(16)) }),
        (a.custom_capabilities || []).length ? panel('Custom capabilities', h('div', { class: 'chips' }, a.custom_capabilities.map((c) => h('span', { class: 'chip' }, c)))) : null)));

    // Health.
    replace(panels.health, a.health
      ? panel(a.online ? 'Component health' : 'Component health (last reported; the agent is offline)', h('ul', { class: 'tree', 'aria-label': 'Component health', 'data-testid': 'health-tree' }, healthNode(attr(a, 'service.name') || 'agent', a.health)))
      : panel('Component health', h('p', { class: 'muted' }, caps.has('ReportsHealth') ? 'The agent has not reported its health yet.' : 'The agent does not report health.')));

    // Configuration.
    const desiredFiles = s.config && s.config.desired && s.config.desired.files;
    replace(panels.config, h('div', { class: 'stack' },
      panel('Assignments to this agent', assignmentsTable(s.config, load), { flush: true }),
      panel('Desired → effective', diffPanelBody(s.config), { flush: true, testid: 'agent-config-diff-panel',
        extra: h('span', { class: 'faint' }, 'what Steward offers against what the agent reports it runs') }),
      panel('Effective configuration', a.effective_config ? configFiles(a.effective_config, 'effective-config')
        : h('p', { class: 'muted', 'data-testid': 'effective-config' }, caps.has('ReportsEffectiveConfig') ? 'Not reported yet.' : 'The agent does not report its effective configuration.'),
      { extra: h('span', { class: 'faint' }, 'as reported by the agent') }),
      panel('Desired configuration', s.config && s.config.error ? h('p', { class: 'error-text' }, s.config.error)
        : configFiles(desiredFiles, 'desired-config'), { extra: h('span', { class: 'faint' }, 'what Steward offers, from the assignments that match') })));

    // Packages.
    const ps = a.package_statuses;
    const pkgs = Object.entries((ps && ps.packages) || {}).sort((x, y) => x[0].localeCompare(y[0]));
    replace(panels.packages, h('div', { class: 'stack' },
      ps && ps.error_message ? h('div', { class: 'callout bad', role: 'alert' }, ps.error_message) : null,
      panel('Packages', pkgs.length ? h('table', { class: 'data', 'data-testid': 'packages' },
        h('thead', null, h('tr', null, ['Package', 'Status', 'Installed', 'Offered', 'Progress', 'Error'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, pkgs.map(([n, p]) => h('tr', null,
          h('td', { class: 'mono' }, n),
          h('td', null, badge(p.status || '', p.status === 'INSTALLED' ? 'ok' : p.status === 'INSTALL_FAILED' ? 'bad' : 'warn')),
          h('td', null, p.agent_has_version || ''),
          h('td', null, p.server_offered_version || ''),
          h('td', null, p.download_percent ? Math.round(p.download_percent) + '%' : ''),
          h('td', { class: 'error-text' }, p.error_message || '')))))
        : h('p', { class: 'muted panel-body', 'data-testid': 'packages' }, caps.has('ReportsPackageStatuses') ? 'No package reported.' : 'The agent does not report package statuses.'), { flush: true })));

    // Events.
    replace(panels.events, panel('Event history', s.events.length ? h('table', { class: 'data', 'data-testid': 'agent-events' },
      h('thead', null, h('tr', null, ['Time', 'Event', 'Message', 'Details'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, s.events.map((ev) => h('tr', { 'data-testid': 'agent-event', 'data-type': ev.type },
        h('td', { class: 'nowrap', title: fmtTime(ev.time) }, fmtTime(ev.time)),
        h('td', { class: 'nowrap' }, badge(ev.type, eventKind(ev))),
        h('td', { class: 'ev-msg-cell' }, eventMessage(ev)),
        h('td', null, eventDetails(ev))))))
      : h('p', { class: 'muted panel-body', 'data-testid': 'agent-events' }, 'No events recorded.'), { flush: true }));
  }

  async function forget() {
    const ok = await openDialog({
      title: 'Forget agent', submitLabel: 'Forget', danger: true, testid: 'forget-dialog',
      body: h('p', null, `Remove ${agentName(s.agent)} (${id}) and its event history from Steward? If the agent connects again it is listed again.`),
      onSubmit: () => api.deleteAgent(id),
    });
    if (ok) {
      toast(`Forgot ${agentName(s.agent)}.`);
      ctx.navigate('/agents');
    }
  }

  async function restart() {
    const ok = await confirmDialog('Restart agent', `Send the restart command to ${agentName(s.agent)}? The agent restarts and reconnects.`, { confirmLabel: 'Restart', danger: true, testid: 'restart-dialog' });
    if (!ok) return;
    try {
      await api.restart(id);
      toast('Restart command sent.');
    } catch (e) {
      toast('Restart failed: ' + e.message, 'bad');
    }
  }

  async function pushConfig() {
    let cfgs;
    try {
      cfgs = list(await api.configs(), 'configs');
    } catch (e) {
      toast('Could not list configurations: ' + e.message, 'bad');
      return;
    }
    if (!cfgs.length) {
      toast('There is no configuration yet. Create one on the Configurations page.', 'bad');
      return;
    }
    const cfg = h('select', { id: 'pc-config', required: true, 'data-testid': 'push-config-select' },
      cfgs.map((c) => h('option', { value: c.name }, `${c.name} (v${c.version})`)));
    const ver = h('select', { id: 'pc-version', 'data-testid': 'push-config-version' });
    const name = h('input', { type: 'text', id: 'pc-name', class: 'mono', required: true, 'data-testid': 'push-config-name' });
    const prio = h('input', { type: 'number', id: 'pc-prio', value: '100', 'data-testid': 'push-config-priority' });
    let nameTouched = false;
    name.addEventListener('input', () => { nameTouched = true; });
    async function onConfig() {
      if (!nameTouched) name.value = `agent-${shortId(id)}-${cfg.value}`.slice(0, 128);
      replace(ver, h('option', { value: '0' }, 'Latest (follow new versions)'));
      try {
        const vs = list(await api.configVersions(cfg.value), 'versions');
        for (const v of vs) ver.append(h('option', { value: String(v.version) }, `v${v.version}${v.comment ? ' — ' + v.comment : ''}`));
      } catch { /* latest is still offered */ }
    }
    cfg.addEventListener('change', onConfig);
    onConfig();
    await openDialog({
      title: 'Push configuration', submitLabel: 'Push', testid: 'push-config-dialog',
      body: h('div', { class: 'form-grid' },
        h('div', { class: 'field' }, h('label', { for: 'pc-config' }, 'Configuration'), cfg),
        h('div', { class: 'field' }, h('label', { for: 'pc-version' }, 'Version'), ver),
        h('div', { class: 'field' }, h('label', { for: 'pc-name' }, 'Assignment name'), name),
        h('div', { class: 'field' }, h('label', { for: 'pc-prio' }, 'Priority'), prio, h('span', { class: 'hint' }, 'Higher wins over selector assignments.')),
        h('p', { class: 'muted full', style: 'margin:0' }, 'Creates an assignment that targets only this agent. Steward sends the configuration at once if the agent is connected.')),
      onSubmit: async () => {
        await api.putAssignment({ name: name.value.trim(), config: cfg.value, version: parseInt(ver.value, 10) || 0, agent_id: id, priority: parseInt(prio.value, 10) || 0 });
        toast(`Pushing ${cfg.value} to ${agentName(s.agent)}.`);
        load();
      },
    });
  }

  const refresh = throttle(load, 500);
  const off = on((ev) => {
    if (ev.agent_id === id || ev.type === 'assignment.changed' || ev.type === 'config.changed' || ev.type === 'resync') refresh();
  });
  load();
  return () => { alive = false; off(); refresh.cancel(); telemetry.stop(); if (ctrl) ctrl.abort(); };
}
