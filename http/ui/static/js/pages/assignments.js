// Assignments: which configuration goes to which agents (a label selector, or
// one agent by id). Listed on their own page and on each configuration.
import { h, replace, throttle, timeEl, toast, shortId } from '../dom.js';
import { api, list } from '../api.js';
import { on } from '../events.js';
import { openDialog, confirmDialog } from '../dialog.js';

/**
 * editAssignment opens the create/edit dialog. existing is null to create;
 * fixedConfig preselects a configuration. Resolves true when saved.
 */
export async function editAssignment(existing, fixedConfig) {
  let cfgs = [];
  try { cfgs = list(await api.configs(), 'configs'); } catch (e) { toast(e.message, 'bad'); return false; }
  if (!cfgs.length) { toast('Create a configuration first.', 'bad'); return false; }
  const a = existing || { name: '', config: fixedConfig || cfgs[0].name, version: 0, selector: '', priority: 0 };
  const name = h('input', { type: 'text', id: 'as-name', class: 'mono', value: a.name, required: true, disabled: !!existing, 'data-testid': 'assignment-name', placeholder: 'prod-gateways' });
  const cfg = h('select', { id: 'as-config', 'data-testid': 'assignment-config' }, cfgs.map((c) => h('option', { value: c.name, selected: c.name === a.config }, c.name)));
  const ver = h('select', { id: 'as-version', 'data-testid': 'assignment-version' });
  const target = h('select', { id: 'as-target', 'data-testid': 'assignment-target' },
    h('option', { value: 'selector', selected: !a.agent_id }, 'Agents matching a label selector'),
    h('option', { value: 'agent', selected: !!a.agent_id }, 'One agent by instance id'));
  const selector = h('input', { type: 'text', id: 'as-selector', class: 'mono', value: a.selector || '', 'data-testid': 'assignment-selector', placeholder: 'env=prod,service.name=otelcol' });
  const agentId = h('input', { type: 'text', id: 'as-agent', class: 'mono', value: a.agent_id || '', 'data-testid': 'assignment-agent', placeholder: '0190a1b2-…' });
  const prio = h('input', { type: 'number', id: 'as-prio', value: String(a.priority || 0), 'data-testid': 'assignment-priority' });
  const selField = h('div', { class: 'field full' }, h('label', { for: 'as-selector' }, 'Label selector'), selector,
    h('span', { class: 'hint' }, 'Kubernetes syntax: key=value, key!=value, key in (a,b), key notin (a,b), key, !key — comma means and. Matches reported attributes and operator labels.'));
  const agentField = h('div', { class: 'field full' }, h('label', { for: 'as-agent' }, 'Agent instance id'), agentId);
  // The match count follows what is typed (debounced); a stale answer is
  // aborted, so the count always describes the current selector.
  const count = h('p', { class: 'hint', 'data-testid': 'assignment-match-count', 'aria-live': 'polite' });
  let inflight = null;
  let timer = 0;
  function countMatches() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (inflight) inflight.abort();
      const body = { name: name.value.trim() || 'new-assignment', config: cfg.value, version: parseInt(ver.value, 10) || 0 };
      if (target.value === 'selector') body.selector = selector.value.trim(); else body.agent_id = agentId.value.trim();
      if (!body.selector && !body.agent_id) { replace(count); count.dataset.matched = ''; return; }
      const ctl = new AbortController();
      inflight = ctl;
      try {
        const p = await api.previewAssignment(body, { signal: ctl.signal });
        count.className = 'hint';
        count.dataset.matched = String(p.matched);
        replace(count, `Matches ${p.matched} agent${p.matched === 1 ? '' : 's'}; ${p.changed} would change.`,
          p.blocked ? h('span', { class: 'error-text' }, ' Blocked: ' + (p.missing ? `${p.missing} agent(s) lack components this configuration defines.` : 'the configuration has validation errors.')) : '');
      } catch (e) {
        if (e.name === 'AbortError') return;
        count.className = 'hint error-text';
        count.dataset.matched = '';
        replace(count, e.message);
      }
    }, 300);
  }
  for (const el of [selector, agentId, name]) el.addEventListener('input', countMatches);
  for (const el of [cfg, ver, target]) el.addEventListener('change', countMatches);
  selField.append(count);
  const syncTarget = () => { selField.hidden = target.value !== 'selector'; agentField.hidden = target.value !== 'agent'; if (target.value === 'agent') agentField.append(count); else selField.append(count); };
  target.addEventListener('change', syncTarget);
  syncTarget();
  async function loadVersions() {
    replace(ver, h('option', { value: '0' }, 'Latest (follow new versions)'));
    try {
      for (const v of list(await api.configVersions(cfg.value), 'versions')) {
        ver.append(h('option', { value: String(v.version), selected: v.version === a.version && cfg.value === a.config }, `v${v.version}${v.comment ? ' — ' + v.comment : ''}`));
      }
    } catch { /* latest is still offered */ }
  }
  cfg.addEventListener('change', loadVersions);
  loadVersions();
  countMatches();
  return openDialog({
    title: existing ? `Edit assignment ${a.name}` : 'New assignment', submitLabel: existing ? 'Save' : 'Create', testid: 'assignment-dialog',
    body: h('div', { class: 'form-grid' },
      h('div', { class: 'field' }, h('label', { for: 'as-name' }, 'Name'), name),
      h('div', { class: 'field' }, h('label', { for: 'as-prio' }, 'Priority'), prio),
      h('div', { class: 'field' }, h('label', { for: 'as-config' }, 'Configuration'), cfg),
      h('div', { class: 'field' }, h('label', { for: 'as-version' }, 'Version'), ver),
      h('div', { class: 'field full' }, h('label', { for: 'as-target' }, 'Target'), target),
      selField, agentField),
    onSubmit: async () => {
      const body = { name: name.value.trim(), config: cfg.value, version: parseInt(ver.value, 10) || 0, priority: parseInt(prio.value, 10) || 0 };
      if (target.value === 'selector') {
        if (!selector.value.trim()) throw new Error('Enter a label selector.');
        body.selector = selector.value.trim();
      } else {
        if (!agentId.value.trim()) throw new Error('Enter the agent instance id.');
        body.agent_id = agentId.value.trim();
      }
      await api.putAssignment(body);
      toast(existing ? 'Assignment saved.' : 'Assignment created.');
    },
  });
}

/**
 * assignmentsView renders the assignment table (all, or those of one config)
 * with create, edit and delete. Returns {node, cleanup}.
 */
export function assignmentsView({ config } = {}) {
  const tbody = h('tbody', { 'data-testid': 'assignments-rows' });
  const err = h('div');
  const node = h('section', { class: 'panel', 'aria-label': 'Assignments', 'data-testid': 'assignments' },
    h('div', { class: 'panel-head' },
      h('h2', null, config ? 'Assignments of this configuration' : 'Assignments'),
      h('button', { type: 'button', class: 'primary small', 'data-testid': 'assignment-new', onclick: async () => { if (await editAssignment(null, config)) load(); } }, 'New assignment')),
    err,
    h('div', { class: 'table-wrap' }, h('table', { class: 'data', 'aria-label': 'Assignments' },
      h('thead', null, h('tr', null, ['Name', 'Configuration', 'Version', 'Target', 'Agents', 'Priority', 'Updated', ''].map((c) => h('th', { scope: 'col' }, c)))),
      tbody)));
  let alive = true;
  let shownKey = null;
  async function load() {
    let all;
    try { all = list(await api.assignments(), 'assignments'); } catch (e) {
      if (e.status !== 401 && alive) replace(err, h('div', { class: 'callout bad panel-body' }, e.message));
      return;
    }
    if (!alive) return;
    replace(err);
    const key = JSON.stringify(all);
    if (key === shownKey) return;
    shownKey = key;
    const rows = all.filter((a) => !config || a.config === config).sort((x, y) => (y.priority || 0) - (x.priority || 0) || x.name.localeCompare(y.name));
    replace(tbody, rows.length ? rows.map((a) => h('tr', { 'data-testid': 'assignment-row', 'data-name': a.name },
      h('td', { class: 'mono' }, a.name),
      h('td', null, h('a', { href: '/configs/' + encodeURIComponent(a.config) }, a.config)),
      h('td', null, a.version ? 'v' + a.version : h('span', { class: 'muted' }, 'latest')),
      h('td', null, a.agent_id
        ? h('span', null, 'agent ', h('a', { class: 'mono', href: '/agents/' + encodeURIComponent(a.agent_id) }, shortId(a.agent_id)))
        : h('a', { class: 'mono', href: '/agents?selector=' + encodeURIComponent(a.selector), title: 'Show matching agents' }, a.selector)),
      agentCounts(a),
      h('td', null, String(a.priority || 0)),
      h('td', null, timeEl(a.updated_at || a.created_at)),
      h('td', { class: 'right nowrap' },
        h('button', { type: 'button', class: 'small', 'data-testid': 'assignment-edit', onclick: async () => { if (await editAssignment(a)) load(); } }, 'Edit'), ' ',
        h('button', { type: 'button', class: 'small danger', 'data-testid': 'assignment-delete', onclick: async () => {
          if (!(await confirmDialog('Delete assignment', `Delete assignment "${a.name}"? Agents it targets stop receiving ${a.config} from it.`, { confirmLabel: 'Delete', danger: true, testid: 'assignment-delete-dialog' }))) return;
          try { await api.deleteAssignment(a.name); toast('Assignment deleted.'); load(); } catch (e) { toast(e.message, 'bad'); }
        } }, 'Delete'))))
      : h('tr', null, h('td', { class: 'empty', colspan: 8 }, config ? 'This configuration is not assigned to any agent.' : 'No assignment yet. Assign a configuration to agents by label selector.')));
  }
  const refresh = throttle(() => { shownKey = null; load(); }, 2000);
  const off = on((ev) => { if (ev.type === 'assignment.changed' || ev.type === 'resync' || ev.type === 'agent.config_status' || ev.type === 'agent.sync') refresh(); });
  load();
  return { node, cleanup: () => { alive = false; off(); refresh.cancel(); } };
}

// agentSelector selects an assignment's agents (an agent_id assignment by
// the instance.uid label every agent has).
function agentSelector(a) {
  return a.agent_id ? 'instance.uid=' + a.agent_id : a.selector;
}

/**
 * agentCounts is a cell counting the agents an assignment matches, those
 * running their desired config (applied) and those whose config failed,
 * each linking to the agent list filtered so.
 */
function agentCounts(a) {
  const selector = agentSelector(a);
  const cell = h('td', { class: 'nowrap', 'data-testid': 'assignment-counts' }, h('span', { class: 'muted' }, '…'));
  const link = (n, label, sync, testid) => h('a', { href: '/agents?selector=' + encodeURIComponent(selector) + (sync ? '&sync=' + sync : ''), 'data-testid': testid, 'data-count': String(n) }, `${n} ${label}`);
  Promise.all([undefined, 'in_sync', 'failed'].map((sync) => api.agents({ selector, sync, limit: 1 }).then((r) => (r && r.total) || 0)))
    .then(([matched, applied, failed]) => replace(cell,
      link(matched, 'matched', '', 'assignment-matched'), ' · ', link(applied, 'applied', 'in_sync', 'assignment-applied'), ' · ',
      failed ? h('span', { class: 'error-text' }, link(failed, 'failed', 'failed', 'assignment-failed')) : link(failed, 'failed', 'failed', 'assignment-failed')))
    .catch((e) => replace(cell, h('span', { class: 'muted', title: e.message }, '—')));
  return cell;
}

export function mount(root, ctx) {
  ctx.setTitle('Assignments');
  const v = assignmentsView();
  root.append(
    h('div', { class: 'page-head' }, h('div', { class: 'titles' }, h('h1', { tabindex: '-1' }, 'Assignments'),
      h('div', { class: 'sub' }, 'An agent runs the files of every assignment that matches it; on a clash the higher priority wins.'))),
    v.node);
  return v.cleanup;
}
