// Rollouts: move an assignment to a new configuration version in stages
// (a percentage of agents, or a label selector, per stage). Steward advances
// a stage once its agents have applied the version and pauses the rollout
// when too many fail. Progress updates live.
import { h, replace, throttle, timeEl, toast, badge } from '../dom.js';
import { api, list } from '../api.js';
import { on } from '../events.js';
import { openDialog, confirmDialog } from '../dialog.js';

const STATE_KIND = { running: 'info', paused: 'warn', completed: 'ok', rolled_back: '' };
const STATE_LABEL = { running: 'Running', paused: 'Paused', completed: 'Completed', rolled_back: 'Rolled back' };

function stageText(st) {
  return st.selector ? st.selector : st.percent + '%';
}

/** parseStages reads one stage per line: a percentage ("10" or "10%") or a label selector. */
export function parseStages(text) {
  const out = [];
  for (const raw of String(text).split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^(\d{1,3})\s*%?$/.exec(line);
    out.push(m ? { percent: parseInt(m[1], 10) } : { selector: line });
  }
  return out;
}

function progressCell(r) {
  const p = r.progress;
  if (!p || !p.targeted) return h('span', { class: 'faint' }, r.state === 'running' ? 'waiting for agents' : '—');
  const pc = (n) => (n / p.targeted) * 100 + '%';
  return h('div', { 'data-testid': 'rollout-progress' },
    h('div', { class: 'ratio', role: 'img', 'aria-label': `${p.applied} applied, ${p.failed} failed, ${p.pending} pending of ${p.targeted}` },
      h('span', { class: 'ok', style: `width:${pc(p.applied)}` }),
      h('span', { class: 'bad', style: `width:${pc(p.failed)}` }),
      h('span', { class: 'muted', style: `width:${pc(p.pending)}` })),
    h('span', { class: 'faint' }, `${p.applied}/${p.targeted} applied`, p.failed ? `, ${p.failed} failed` : '', p.pending ? `, ${p.pending} pending` : ''));
}

async function startRollout() {
  let asgs;
  try { asgs = list(await api.assignments(), 'assignments'); } catch (e) { toast(e.message, 'bad'); return false; }
  if (!asgs.length) { toast('Create an assignment first: a rollout moves an assignment to a new version.', 'bad'); return false; }
  const asg = h('select', { id: 'ro-asg', 'data-testid': 'rollout-assignment' }, asgs.map((a) => h('option', { value: a.name }, `${a.name} (${a.config}${a.version ? ' v' + a.version : ''})`)));
  const to = h('select', { id: 'ro-to', 'data-testid': 'rollout-to' });
  const name = h('input', { type: 'text', id: 'ro-name', class: 'mono', required: true, 'data-testid': 'rollout-name' });
  const stages = h('textarea', { id: 'ro-stages', rows: '4', class: 'mono', 'data-testid': 'rollout-stages', spellcheck: 'false' });
  stages.value = '10\n50\n100';
  const ratio = h('input', { type: 'number', id: 'ro-ratio', min: '0', max: '100', value: '0', 'data-testid': 'rollout-max-failures' });
  let nameTouched = false;
  name.addEventListener('input', () => { nameTouched = true; });
  async function onAsg() {
    const a = asgs.find((x) => x.name === asg.value);
    replace(to);
    try {
      const vs = list(await api.configVersions(a.config), 'versions').sort((x, y) => y.version - x.version);
      for (const v of vs) to.append(h('option', { value: String(v.version) }, `v${v.version}${v.comment ? ' — ' + v.comment : ''}`));
    } catch (e) { toast(e.message, 'bad'); }
    setName();
  }
  const setName = () => { if (!nameTouched) name.value = `${asg.value}-v${to.value || ''}`.slice(0, 128); };
  asg.addEventListener('change', onAsg);
  to.addEventListener('change', setName);
  onAsg();
  return openDialog({
    title: 'Start rollout', submitLabel: 'Start', testid: 'rollout-dialog',
    body: h('div', { class: 'form-grid' },
      h('div', { class: 'field' }, h('label', { for: 'ro-asg' }, 'Assignment'), asg),
      h('div', { class: 'field' }, h('label', { for: 'ro-to' }, 'To version'), to),
      h('div', { class: 'field full' }, h('label', { for: 'ro-name' }, 'Rollout name'), name),
      h('div', { class: 'field' }, h('label', { for: 'ro-stages' }, 'Stages'), stages,
        h('span', { class: 'hint' }, 'One per line: a percentage of agents (stable per agent), or a label selector. Stages add up.')),
      h('div', { class: 'field' }, h('label', { for: 'ro-ratio' }, 'Pause above failures (%)'), ratio,
        h('span', { class: 'hint' }, '0 pauses on the first failure.'))),
    onSubmit: async () => {
      const st = parseStages(stages.value);
      if (!st.length) throw new Error('Give at least one stage.');
      const r = await api.startRollout({
        name: name.value.trim(), assignment: asg.value, to_version: parseInt(to.value, 10) || 0,
        stages: st, max_failure_ratio: Math.min(100, Math.max(0, parseFloat(ratio.value) || 0)) / 100,
      });
      toast(`Rollout ${r ? r.name : name.value} started.`);
    },
  });
}

export function mount(root, ctx) {
  ctx.setTitle('Rollouts');
  const tbody = h('tbody', { 'data-testid': 'rollouts-rows' });
  const err = h('div');
  root.append(
    h('div', { class: 'page-head' },
      h('div', { class: 'titles' }, h('h1', { tabindex: '-1' }, 'Rollouts'),
        h('div', { class: 'sub' }, 'Move an assignment to a new version in stages. A stage advances once its agents have applied the version; the rollout pauses when failures pass the limit.')),
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'primary', 'data-testid': 'rollout-new', onclick: async () => { if (await startRollout()) load(); } }, 'Start rollout'))),
    err,
    h('section', { class: 'panel', 'aria-label': 'Rollouts' }, h('div', { class: 'table-wrap' }, h('table', { class: 'data', 'aria-label': 'Rollouts' },
      h('thead', null, h('tr', null, ['Name', 'Assignment', 'Versions', 'State', 'Stage', 'Progress', 'Updated', ''].map((c) => h('th', { scope: 'col' }, c)))),
      tbody))));

  async function act(r, what) {
    const verbs = { pause: 'Pause', resume: 'Resume', rollback: 'Roll back' };
    if (what === 'rollback' && !(await confirmDialog('Roll back', `Return every agent of "${r.assignment}" to v${r.from_version} and end rollout ${r.name}?`, { confirmLabel: 'Roll back', danger: true, testid: 'rollback-dialog' }))) return;
    try {
      await api.rolloutAction(r.name, what);
      toast(`${verbs[what]}: ${r.name}.`);
      load();
    } catch (e) { toast(e.message, 'bad'); }
  }

  let alive = true;
  let shownKey = null;
  // A running rollout's progress is measured at a bounded pace, some time
  // after the agents' status events that made this page load; a new
  // measurement is published live (rollout.progress), and while a rollout
  // runs the page also looks again every two seconds, in case the live
  // stream dropped it.
  let poll = null;
  async function load() {
    let rs;
    try { rs = list(await api.rollouts(), 'rollouts'); } catch (e) {
      if (e.status !== 401 && alive) replace(err, h('div', { class: 'callout bad', style: 'margin-bottom:12px' }, e.status === 501 ? 'This server does not run rollouts.' : e.message));
      return;
    }
    if (!alive) return;
    clearTimeout(poll);
    if (rs.some((r) => r.state === 'running')) poll = setTimeout(load, 2000);
    replace(err);
    const key = JSON.stringify(rs);
    if (key === shownKey) return;
    shownKey = key;
    replace(tbody, rs.length ? rs.map((r) => h('tr', { 'data-testid': 'rollout-row', 'data-name': r.name, 'data-state': r.state },
      h('td', { class: 'mono' }, r.name),
      h('td', null, h('a', { href: '/assignments' }, r.assignment)),
      h('td', { class: 'nowrap' }, `v${r.from_version} → v${r.to_version}`),
      h('td', null, badge(STATE_LABEL[r.state] || r.state, STATE_KIND[r.state] || '', 'rollout-state'),
        r.reason ? h('div', { class: 'faint', style: 'margin-top:2px' }, r.reason) : null),
      h('td', null, h('div', { 'data-testid': 'rollout-stage' }, `${Math.min(r.stage + 1, r.stages.length)} of ${r.stages.length}`),
        h('div', { class: 'chips', style: 'margin-top:3px' }, r.stages.map((st, i) => h('span', { class: 'chip label-chip ' + (i <= r.stage ? 'on' : 'off') }, stageText(st))))),
      h('td', { style: 'min-width:180px' }, progressCell(r)),
      h('td', null, timeEl(r.updated_at || r.created_at)),
      h('td', { class: 'right nowrap' },
        r.state === 'running' ? h('button', { type: 'button', class: 'small', 'data-testid': 'rollout-pause', onclick: () => act(r, 'pause') }, 'Pause') : null,
        r.state === 'paused' ? h('button', { type: 'button', class: 'small', 'data-testid': 'rollout-resume', onclick: () => act(r, 'resume') }, 'Resume') : null, ' ',
        r.state === 'running' || r.state === 'paused' ? h('button', { type: 'button', class: 'small danger', 'data-testid': 'rollout-rollback', onclick: () => act(r, 'rollback') }, 'Roll back') : null)))
      : h('tr', null, h('td', { class: 'empty', colspan: 8 }, 'No rollout yet.')));
  }
  const refresh = throttle(load, 700);
  const off = on((ev) => { if (ev.type === 'rollout.changed' || ev.type === 'rollout.progress' || ev.type === 'agent.config_status' || ev.type === 'assignment.changed' || ev.type === 'resync') refresh(); });
  load();
  return () => { alive = false; off(); refresh.cancel(); clearTimeout(poll); };
}
