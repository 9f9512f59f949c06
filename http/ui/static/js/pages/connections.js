// Connection settings: where agents send their own telemetry, their
// heartbeat interval and other connections, offered over OpAMP to the
// agents a selector matches. Header values are secrets: write-only, shown
// as "(set)" and replaced by typing a new value, never read back.
import { h, replace, timeEl, toast } from '../dom.js';
import { request, list } from '../api.js';
import { openDialog, confirmDialog } from '../dialog.js';
import { allows, adminHead, showError, table, emptyRow } from '../admin.js';

const enc = encodeURIComponent;
/** REDACTED is how the API shows a stored secret; sent back, it keeps it. */
const REDACTED = '(redacted)';
const OWN = [['own_metrics', 'Own metrics'], ['own_traces', 'Own traces'], ['own_logs', 'Own logs']];

/** headerRow edits one header; a stored value is not shown, only "(set)". */
function headerRow(key, stored, onRemove) {
  const k = h('input', { type: 'text', class: 'mono', value: key, placeholder: 'Authorization', 'aria-label': 'Header name', 'data-testid': 'conn-header-name' });
  const v = h('input', { type: 'password', class: 'mono', autocomplete: 'off', placeholder: stored ? '(set) — type to replace' : 'value', 'aria-label': 'Header value', 'data-testid': 'conn-header-value', 'data-set': stored ? 'true' : null });
  const row = h('div', { class: 'row' }, k, v, h('button', { type: 'button', class: 'small', 'aria-label': 'Remove header', onclick: () => { row.remove(); onRemove(); } }, '×'));
  row.read = () => [k.value.trim(), v.value !== '' ? v.value : stored ? REDACTED : ''];
  return row;
}

/** destEditor edits one destination (endpoint and headers). */
function destEditor(label, dest, testid) {
  const endpoint = h('input', { type: 'text', class: 'mono', value: (dest && dest.endpoint) || '', placeholder: 'https://otlp.example.com:4318' + ({ 'conn-own_metrics': '/v1/metrics', 'conn-own_traces': '/v1/traces', 'conn-own_logs': '/v1/logs' }[testid] || ''), 'aria-label': label + ' endpoint', 'data-testid': testid + '-endpoint' });
  const rows = h('div', { class: 'labels-editor' });
  const add = (k, stored) => rows.append(headerRow(k, stored, () => {}));
  for (const [k, v] of Object.entries((dest && dest.headers) || {})) add(k, v === REDACTED || v !== '');
  const node = h('fieldset', { class: 'dest', 'data-testid': testid },
    h('legend', null, label),
    h('div', { class: 'field' }, h('span', { class: 'label' }, 'Endpoint (OTLP/HTTP)'), endpoint),
    h('div', { class: 'field' }, h('span', { class: 'label' }, 'Headers'), rows,
      h('div', null, h('button', { type: 'button', class: 'small', 'data-testid': testid + '-add-header', onclick: () => add('', false) }, 'Add header'))));
  node.read = () => {
    if (!endpoint.value.trim()) return undefined;
    const headers = {};
    for (const r of rows.children) {
      const [k, v] = r.read();
      if (k) headers[k] = v;
    }
    return { endpoint: endpoint.value.trim(), headers: Object.keys(headers).length ? headers : undefined };
  };
  return node;
}

async function editSettings(existing) {
  const c = existing || { name: '', selector: '', priority: 0 };
  const name = h('input', { type: 'text', id: 'cs-name', class: 'mono', required: true, value: c.name, disabled: !!existing, placeholder: 'prod-telemetry', 'data-testid': 'conn-name' });
  const selector = h('input', { type: 'text', id: 'cs-selector', class: 'mono', value: c.selector || '', placeholder: 'env=prod (empty: every agent)', 'data-testid': 'conn-selector' });
  const prio = h('input', { type: 'number', id: 'cs-prio', value: String(c.priority || 0), 'data-testid': 'conn-priority' });
  const hb = h('input', { type: 'number', id: 'cs-hb', min: '0', max: '86400', value: c.heartbeat_interval_seconds ?? '', placeholder: 'not offered', 'data-testid': 'conn-heartbeat' });
  const own = OWN.map(([k, l]) => [k, destEditor(l, c[k], 'conn-' + k)]);
  // The preset: own metrics and logs to Steward's receiver (docs/telemetry.md).
  const toSteward = h('input', { type: 'checkbox', id: 'cs-steward-telemetry', checked: c.steward_telemetry ? true : null, 'data-testid': 'conn-steward-telemetry' });
  const presetShown = () => { for (const [k, ed] of own) if (k !== 'own_traces') ed.hidden = toSteward.checked; };
  toSteward.addEventListener('change', presetShown);
  presetShown();
  const others = h('div', { class: 'stack' });
  const addOther = (n, d) => {
    const nm = h('input', { type: 'text', class: 'mono', value: n, placeholder: 'name', 'aria-label': 'Connection name' });
    const ed = destEditor('Other connection', d, 'conn-other');
    ed.insertBefore(h('div', { class: 'field' }, h('span', { class: 'label' }, 'Name'), nm), ed.children[1]);
    ed.otherName = () => nm.value.trim();
    others.append(ed);
  };
  for (const [n, d] of Object.entries(c.other || {})) addOther(n, d);
  return openDialog({
    title: existing ? `Edit connection settings ${c.name}` : 'New connection settings', submitLabel: existing ? 'Save' : 'Create', testid: 'conn-dialog',
    body: h('div', { class: 'stack' },
      h('div', { class: 'form-grid' },
        h('div', { class: 'field' }, h('label', { for: 'cs-name' }, 'Name'), name),
        h('div', { class: 'field' }, h('label', { for: 'cs-prio' }, 'Priority'), prio),
        h('div', { class: 'field' }, h('label', { for: 'cs-selector' }, 'Label selector'), selector),
        h('div', { class: 'field' }, h('label', { for: 'cs-hb' }, 'Heartbeat interval (s)'), hb)),
      h('div', { class: 'field' }, h('label', { for: 'cs-steward-telemetry' }, toSteward, ' Send own telemetry to Steward'),
        h('span', { class: 'hint' }, 'Own metrics and logs go to Steward\'s receiver on the OpAMP listener, each agent with a token of its own; charted on the agent\'s Telemetry tab.')),
      h('p', { class: 'hint faint' }, 'Header values are secrets: a stored value is never shown. Leave "(set)" empty to keep it, or type a new one to replace it.'),
      own.map(([, ed]) => ed), others,
      h('div', null, h('button', { type: 'button', class: 'small', onclick: () => addOther('', null) }, 'Add other connection'))),
    onSubmit: async () => {
      const body = { name: name.value.trim(), selector: selector.value.trim(), priority: parseInt(prio.value, 10) || 0 };
      if (hb.value !== '') body.heartbeat_interval_seconds = parseInt(hb.value, 10);
      if (toSteward.checked) body.steward_telemetry = true;
      for (const [k, ed] of own) { if (ed.hidden) continue; const d = ed.read(); if (d) body[k] = d; }
      for (const ed of others.children) {
        const d = ed.read();
        if (!d) continue;
        if (!ed.otherName()) throw new Error('Name every other connection.');
        (body.other = body.other || {})[ed.otherName()] = d;
      }
      await request('PUT', '/connection-settings/' + enc(body.name), body);
      toast(existing ? 'Connection settings saved.' : 'Connection settings created.');
    },
  });
}

/** destText summarizes a destination: its endpoint and header names, values as "(set)". */
function destText(d) {
  if (!d) return null;
  const hs = Object.keys(d.headers || {});
  return h('div', null, h('span', { class: 'mono' }, d.endpoint),
    hs.length ? h('div', { class: 'faint', 'data-testid': 'conn-headers' }, hs.map((k) => `${k}: (set)`).join(', ')) : null);
}

export function mount(root, ctx) {
  ctx.setTitle('Connection settings');
  const canWrite = allows(ctx, 'operator');
  const rows = h('tbody', { 'data-testid': 'conn-rows' });
  const err = h('div');
  root.append(...adminHead('Connection settings', 'Offered to the agents each selector matches: destinations for their own telemetry, the heartbeat interval and other connections. When several match, each field comes from the highest priority.',
    canWrite ? h('button', { type: 'button', class: 'primary', 'data-testid': 'conn-new', onclick: async () => { if (await editSettings(null)) load(); } }, 'New connection settings') : null),
  err,
  h('section', { class: 'panel', 'aria-label': 'Connection settings' },
    table('conn-table', ['Name', 'Selector', 'Priority', 'Own telemetry', 'Heartbeat', 'Other', 'Updated', ''], rows)));

  function row(c) {
    return h('tr', { 'data-testid': 'conn-row', 'data-name': c.name },
      h('td', { class: 'mono' }, c.name),
      h('td', null, c.selector ? h('a', { class: 'mono', href: '/agents?selector=' + enc(c.selector) }, c.selector) : h('span', { class: 'faint' }, 'every agent')),
      h('td', null, String(c.priority || 0)),
      h('td', null, c.steward_telemetry ? h('div', { 'data-testid': 'conn-steward-telemetry-on' }, 'Metrics and logs: Steward') : null,
        OWN.filter(([k]) => c[k]).map(([k, l]) => h('div', null, h('span', { class: 'faint' }, l + ': '), destText(c[k])))),
      h('td', null, c.heartbeat_interval_seconds !== undefined ? c.heartbeat_interval_seconds + ' s' : '—'),
      h('td', null, Object.entries(c.other || {}).map(([n, d]) => h('div', null, h('span', { class: 'faint' }, n + ': '), destText(d)))),
      h('td', null, timeEl(c.updated_at || c.created_at)),
      h('td', { class: 'right nowrap' }, canWrite ? [
        h('button', { type: 'button', class: 'small', 'data-testid': 'conn-edit', onclick: async () => { if (await editSettings(c)) load(); } }, 'Edit'), ' ',
        h('button', { type: 'button', class: 'small danger', 'data-testid': 'conn-delete', onclick: async () => {
          if (!(await confirmDialog('Delete connection settings', `Delete "${c.name}"? Its agents are offered what the remaining settings give them.`, { confirmLabel: 'Delete', danger: true, testid: 'conn-delete-dialog' }))) return;
          try { await request('DELETE', '/connection-settings/' + enc(c.name)); toast('Deleted.'); load(); } catch (e) { toast(e.message, 'bad'); }
        } }, 'Delete')] : null));
  }
  let alive = true;
  async function load() {
    let all;
    try { all = list(await request('GET', '/connection-settings'), 'settings'); } catch (e) { if (alive) showError(err, e, 'connection settings'); return; }
    if (!alive) return;
    replace(err);
    replace(rows, all.length ? all.map(row) : emptyRow(8, 'No connection settings: agents keep the connections they were started with.'));
  }
  load();
  return () => { alive = false; };
}
