// What the agent page says about configuration, from
// GET /agents/{id}/config: the assignments that apply (by selector as well
// as by agent id), the config versions desired and running by name, and
// the diff from the desired files to the effective config.
import { h, toast } from '../../dom.js';
import { request } from '../../api.js';
import { confirmDialog } from '../../dialog.js';
import { renderDiff } from '../../diff.js';
import { hashChip } from '../../eventview.js';

/** loadAgentConfig fetches the agent's config view. */
export function loadAgentConfig(id, opts) {
  return request('GET', '/agents/' + encodeURIComponent(id) + '/config', undefined, opts);
}

/** configLink names one config version with a link to it. */
function refLink(r) {
  return h('a', { href: '/configs/' + encodeURIComponent(r.config) + '?version=' + r.version }, `${r.config}@${r.version}`);
}

/** versionNode names a desired or running config: its config versions, or unknown/local, and its short hash. */
export function versionNode(v, testid, none) {
  if (!v) return h('span', { class: 'faint', 'data-testid': testid }, none);
  const refs = v.known ? (v.configs || []) : [];
  const name = !v.known ? h('span', { class: 'badge warn', title: 'The hash matches no config version Steward stores: a config from the agent\'s own files or another server' }, v.label || 'unknown/local')
    : refs.length ? refs.map((r, i) => [i ? ', ' : '', refLink(r)]) : h('span', null, '(empty config)');
  return h('span', { class: 'inline', 'data-testid': testid, 'data-label': v.label || '' }, h('span', null, name), hashChip(v.hash));
}

/** assignmentNames lists the assignments that apply, for the overview. */
export function assignmentNames(cfg) {
  const as = (cfg && cfg.assignments) || [];
  if (!as.length) return h('span', { class: 'faint', 'data-testid': 'agent-assignment-names' }, 'None');
  return h('span', { 'data-testid': 'agent-assignment-names' }, as.map((x, i) => [i ? ', ' : '',
    h('a', { href: '/assignments', title: x.match === 'selector' ? 'Selector: ' + x.selector : 'Targets this agent' }, x.name),
    h('span', { class: 'faint' }, x.match === 'selector' ? ' (selector)' : ' (this agent)')]));
}

/** diffPanelBody shows the desired → effective diff, or why there is none. */
export function diffPanelBody(cfg) {
  if (!cfg || cfg.error) return h('p', { class: 'error-text panel-body', 'data-testid': 'agent-config-diff' }, (cfg && cfg.error) || '');
  if (!cfg.diff) return h('p', { class: 'muted panel-body', 'data-testid': 'agent-config-diff' }, cfg.diff_note || 'No difference.');
  const { stat, table } = renderDiff(cfg.diff);
  return h('div', { 'data-testid': 'agent-config-diff' }, h('div', { class: 'panel-body' }, stat, ' lines differ between the desired files and the effective configuration the agent reports.'), table);
}

/** assignmentsTable lists every assignment that applies; only one targeting this agent alone can be removed here. */
export function assignmentsTable(cfg, onChanged) {
  const as = (cfg && cfg.assignments) || [];
  if (!as.length) return h('p', { class: 'muted panel-body', 'data-testid': 'agent-assignments' }, 'No assignment applies to this agent.');
  return h('table', { class: 'data', 'data-testid': 'agent-assignments' },
    h('thead', null, h('tr', null, ['Assignment', 'Applies by', 'Config', 'Version', 'Priority', ''].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, as.map((x) => h('tr', { 'data-testid': 'agent-assignment', 'data-name': x.name, 'data-match': x.match },
      h('td', { class: 'mono' }, x.name),
      h('td', null, x.match === 'selector' ? h('span', null, 'selector ', h('code', null, x.selector)) : 'this agent'),
      h('td', null, h('a', { href: '/configs/' + encodeURIComponent(x.config) }, x.config)),
      h('td', null, x.config_version ? `v${x.config_version}` : '', x.version ? ' (pinned)' : ' (latest)'),
      h('td', null, String(x.priority || 0)),
      h('td', { class: 'right' }, x.match === 'agent_id' ? h('button', { type: 'button', class: 'small danger', onclick: async () => {
        if (await confirmDialog('Remove assignment', `Stop pushing "${x.config}" to this agent (assignment ${x.name})?`, { confirmLabel: 'Remove', danger: true })) {
          try { await request('DELETE', '/assignments/' + encodeURIComponent(x.name)); toast('Assignment removed.'); onChanged(); } catch (e) { toast(e.message, 'bad'); }
        }
      } }, 'Remove') : h('a', { href: '/assignments', class: 'small', title: 'A selector assignment applies to every agent it matches; change it on the Assignments page' }, 'Manage'))))));
}
