// Configurations: the list, and for each one its versions, a view of any
// version, the diff between two versions, an editor that saves a new
// version, and its assignments.
import { h, replace, throttle, timeEl, fmtTime, shortHash, hashHex, toast, fileLabel } from '../dom.js';
import { api, list } from '../api.js';
import { on } from '../events.js';
import { openDialog } from '../dialog.js';
import { renderDiff } from '../diff.js';
import { configFiles } from './agent.js';
import { assignmentsView } from './assignments.js';

const TABS = [
  { key: 'versions', label: 'Versions' },
  { key: 'view', label: 'View' },
  { key: 'diff', label: 'Diff' },
  { key: 'edit', label: 'Edit' },
  { key: 'assignments', label: 'Assignments' },
];
const CONTENT_TYPES = ['text/yaml', 'application/json', 'text/plain'];

function fileEditor(name, file, removable) {
  const nameIn = h('input', { type: 'text', class: 'mono', value: name, placeholder: '(default file)', 'aria-label': 'File name', 'data-testid': 'editor-file-name' });
  const ct = h('select', { 'aria-label': 'Content type', 'data-testid': 'editor-content-type' },
    [...new Set([...CONTENT_TYPES, (file && file.content_type) || 'text/yaml'])].map((t) => h('option', { value: t, selected: t === ((file && file.content_type) || 'text/yaml') }, t)));
  const body = h('textarea', { rows: '22', spellcheck: 'false', 'aria-label': 'Content of ' + fileLabel(name), 'data-testid': 'editor-body' });
  body.value = (file && file.body) || '';
  // Tab inserts two spaces (YAML); Escape then Tab leaves the field.
  let escaped = false;
  body.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { escaped = true; return; }
    if (e.key === 'Tab' && !e.shiftKey && !escaped) {
      e.preventDefault();
      const { selectionStart: a, selectionEnd: b } = body;
      body.setRangeText('  ', a, b, 'end');
    }
    escaped = false;
  });
  const node = h('div', { class: 'file', 'data-testid': 'editor-file' },
    h('div', { class: 'file-head' }, nameIn, ct, h('span', { class: 'spacer' }),
      removable ? h('button', { type: 'button', class: 'small danger', onclick: () => node.remove() }, 'Remove file') : null),
    body);
  node.read = () => ({ name: nameIn.value.trim(), file: { body: body.value, content_type: ct.value } });
  return node;
}

function editorForm(latest, name, onSaved) {
  const files = h('div');
  const entries = Object.entries((latest && latest.files) || { '': { body: '', content_type: 'text/yaml' } }).sort();
  entries.forEach(([n, f], i) => files.append(fileEditor(n, f, i > 0)));
  const comment = h('input', { type: 'text', id: 'ed-comment', placeholder: 'What changed and why', 'data-testid': 'editor-comment' });
  const err = h('p', { class: 'error-text', role: 'alert', hidden: true, 'data-testid': 'editor-error' });
  const save = h('button', { type: 'submit', class: 'primary', 'data-testid': 'editor-save' }, 'Save new version');
  const form = h('form', { class: 'stack', 'data-testid': 'config-editor' },
    h('p', { class: 'muted', style: 'margin:0' }, latest
      ? `Editing v${latest.version}. Saving shows a review first (diff, validation, agents affected) and creates v${latest.version + 1} when confirmed; identical content keeps v${latest.version}.`
      : 'The first version of a new configuration.'),
    files,
    h('div', null, h('button', { type: 'button', class: 'small', onclick: () => files.append(fileEditor('file-' + (files.children.length + 1) + '.yaml', null, true)) }, 'Add file')),
    h('div', { class: 'field' }, h('label', { for: 'ed-comment' }, 'Comment'), comment),
    err,
    h('div', { class: 'actions' }, save));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const map = {};
    for (const f of files.children) {
      const { name: n, file } = f.read();
      if (n in map) { err.textContent = `Two files are named "${fileLabel(n)}".`; err.hidden = false; return; }
      map[n] = file;
    }
    save.disabled = true;
    err.hidden = true;
    try {
      const p = await api.previewConfig(name, map, comment.value.trim());
      if (latest && p.version === latest.version) {
        toast('No change: the content is identical to v' + latest.version + '.');
        save.disabled = false;
        return;
      }
      const c = await reviewChange(name, latest, map, comment.value.trim(), p);
      save.disabled = false;
      if (c) onSaved(c);
    } catch (ex) {
      err.textContent = ex.message;
      err.hidden = false;
      save.disabled = false;
    }
  });
  return form;
}

function diffBlock(text) {
  const d = renderDiff(text);
  return h('div', { 'data-testid': 'review-diff' }, d.stat, h('div', { class: 'table-wrap' }, d.table));
}

/** parseStages reads "10%, ring=canary, 100%" into rollout stages. */
function parseStages(text) {
  return text.split(/[;\n]|,(?![^()]*\))/).map((x) => x.trim()).filter(Boolean).map((x) => {
    const m = /^(\d+)\s*%$/.exec(x);
    return m ? { percent: parseInt(m[1], 10) } : { selector: x };
  });
}

/**
 * reviewChange shows what saving a new version would do — the diff against
 * the current version, validation findings, the agents it would change and
 * those lacking components it defines — and asks for confirmation: apply
 * now, or pin the assignments that follow the latest version and start a
 * staged rollout of each. A blocked change can only be made by ticking the
 * override (audited). Resolves to the stored version, or null.
 */
async function reviewChange(name, latest, files, comment, p) {
  let following = [];
  try { following = list(await api.assignments(), 'assignments').filter((a) => a.config === name && !a.version); } catch { /* apply now still works */ }
  const errors = p.findings.filter((f) => f.severity === 'error');
  const finding = (f) => h('li', { class: f.severity === 'error' ? 'error-text' : 'muted', 'data-testid': 'review-finding', 'data-severity': f.severity },
    h('strong', null, f.severity), ' ', h('span', { class: 'mono' }, fileLabel(f.file) + (f.line ? ':' + f.line : '')), ' — ', f.message);
  const override = h('input', { type: 'checkbox', id: 'rv-override', 'data-testid': 'review-override' });
  const modeApply = h('input', { type: 'radio', name: 'rv-mode', id: 'rv-apply', value: 'apply', checked: true, 'data-testid': 'review-mode-apply' });
  const modeRollout = h('input', { type: 'radio', name: 'rv-mode', id: 'rv-rollout', value: 'rollout', disabled: !latest || !following.length, 'data-testid': 'review-mode-rollout' });
  const stages = h('input', { type: 'text', id: 'rv-stages', class: 'mono', value: '10%, 50%, 100%', 'data-testid': 'review-stages', 'aria-label': 'Rollout stages' });
  const body = h('div', { class: 'stack', 'data-testid': 'config-review' },
    h('p', { 'data-testid': 'review-affected', 'data-changed': String(p.changed) },
      h('strong', null, `${p.changed} agent${p.changed === 1 ? '' : 's'}`), ` would get ${name} v${p.version}`,
      p.matched !== p.changed ? ` (${p.matched} reached by assignments that follow the latest version).` : '.',
      p.unchecked ? ` ${p.unchecked} report no available components and could not be checked.` : ''),
    p.blocked ? h('div', { class: 'callout bad', role: 'alert', 'data-testid': 'review-blocked' },
      h('strong', null, 'Blocked. '),
      p.missing ? `${p.missing} agent${p.missing === 1 ? ' lacks' : 's lack'} components this configuration defines: ` : '',
      errors.length ? `${errors.length} validation error${errors.length === 1 ? '' : 's'}.` : '',
      p.missing ? h('ul', { 'data-testid': 'review-missing' }, p.missing_agents.map((m) => h('li', { 'data-testid': 'review-missing-agent', 'data-agent-id': m.id },
        h('a', { class: 'mono', href: '/agents/' + encodeURIComponent(m.id) }, m.name ? `${m.name} (${m.id.slice(0, 8)})` : m.id), ': ',
        m.missing.map((c) => `${c.kind.replace(/s$/, '')} ${c.id}`).join(', ')))) : null,
      h('label', { for: 'rv-override', class: 'check' }, override, ' Save anyway: override validation (recorded in the audit log)')) : null,
    h('section', { 'aria-label': 'Validation' }, h('h3', null, 'Validation'),
      p.findings.length ? h('ul', { 'data-testid': 'review-findings' }, p.findings.map(finding)) : h('p', { class: 'muted', 'data-testid': 'review-findings-none' }, 'No findings.')),
    h('section', { 'aria-label': 'How to apply' }, h('h3', null, 'How to apply'),
      h('div', null, h('label', { for: 'rv-apply', class: 'check' }, modeApply, ` Apply now to every agent that follows the latest version`)),
      h('div', null, h('label', { for: 'rv-rollout', class: 'check' }, modeRollout, ' Start a staged rollout',
        following.length ? ` of ${following.map((a) => a.name).join(', ')}` : ' (no assignment follows the latest version)'), ' ', stages)),
    h('section', { 'aria-label': 'Changes' }, h('h3', null, latest ? `Changes against v${latest.version}` : 'Content'),
      p.config_diff ? diffBlock(p.config_diff) : h('p', { class: 'muted' }, 'No difference.')));
  let stored = null;
  const done = openDialog({
    title: `Review ${name} v${p.version}`, submitLabel: 'Confirm', testid: 'config-review-dialog', body,
    onSubmit: async () => {
      if (p.blocked && !override.checked) throw new Error('Blocked by validation: fix the configuration, or tick the override.');
      const force = p.blocked && override.checked;
      if (!modeRollout.checked) {
        stored = await api.putConfig(name, files, comment, force);
        toast(`Saved ${name} v${stored.version}.`);
        return;
      }
      const st = parseStages(stages.value);
      if (!st.length) throw new Error('Give the rollout stages, e.g. 10%, 50%, 100%.');
      for (const a of following) await api.putAssignment({ ...a, version: latest.version });
      stored = await api.putConfig(name, files, comment, force);
      for (const a of following) {
        await api.startRollout({ name: `${a.name}-v${stored.version}`, assignment: a.name, to_version: stored.version, stages: st }, force);
      }
      toast(`Saved ${name} v${stored.version}; rollout${following.length === 1 ? '' : 's'} started.`);
    },
  });
  const submit = document.querySelector('[data-testid="config-review-dialog-submit"]');
  const sync = () => { if (submit) submit.disabled = p.blocked && !override.checked; };
  override.addEventListener('change', sync);
  sync();
  return (await done) ? stored : null;
}

async function newConfig(navigate) {
  const name = h('input', { type: 'text', id: 'nc-name', class: 'mono', required: true, placeholder: 'otelcol-gateway', 'data-testid': 'new-config-name' });
  const ct = h('select', { id: 'nc-ct', 'data-testid': 'new-config-content-type' }, CONTENT_TYPES.map((t) => h('option', { value: t }, t)));
  const body = h('textarea', { id: 'nc-body', rows: '14', spellcheck: 'false', 'data-testid': 'new-config-body' });
  const comment = h('input', { type: 'text', id: 'nc-comment', 'data-testid': 'new-config-comment' });
  let created = null;
  const ok = await openDialog({
    title: 'New configuration', submitLabel: 'Create', testid: 'new-config-dialog',
    body: h('div', { class: 'form-grid' },
      h('div', { class: 'field' }, h('label', { for: 'nc-name' }, 'Name'), name, h('span', { class: 'hint' }, 'Letters, digits, ".", "_" and "-".')),
      h('div', { class: 'field' }, h('label', { for: 'nc-ct' }, 'Content type'), ct),
      h('div', { class: 'field full' }, h('label', { for: 'nc-body' }, 'Content'), body),
      h('div', { class: 'field full' }, h('label', { for: 'nc-comment' }, 'Comment'), comment)),
    onSubmit: async () => {
      created = await api.putConfig(name.value.trim(), { '': { body: body.value, content_type: ct.value } }, comment.value.trim());
      toast(`Created ${name.value.trim()}.`);
    },
  });
  if (ok) navigate('/configs/' + encodeURIComponent((created && created.name) || name.value.trim()));
}

export function mount(root, ctx) {
  const name = ctx.params.name || '';
  const q = ctx.query;
  let tab = TABS.some((t) => t.key === q.get('tab')) ? q.get('tab') : 'versions';
  let alive = true;
  let cfgs = [];
  let versions = [];
  let sub = null; // cleanup of a nested view
  let listKey = null;   // what the list shows
  let detailKey = null; // the versions the detail shows

  const nav = h('ul', { class: 'list-nav', 'data-testid': 'config-list' });
  const detail = h('div', { 'data-testid': 'config-detail' });
  const newBtn = h('button', { type: 'button', class: 'primary', 'data-testid': 'config-new', onclick: () => newConfig(ctx.navigate) }, 'New configuration');
  root.append(
    h('div', { class: 'page-head' },
      h('div', { class: 'titles' }, h('h1', { tabindex: '-1' }, 'Configurations'),
        h('div', { class: 'sub' }, 'Versioned agent configurations. Every save is a new immutable version.')),
      h('div', { class: 'actions' }, newBtn)),
    h('div', { class: 'split' },
      h('nav', { class: 'panel', 'aria-label': 'Configurations' }, nav),
      detail));
  ctx.setTitle(name ? name + ' · Configurations' : 'Configurations');

  function setQuery(patch) {
    const u = new URL(location.href);
    for (const [k, v] of Object.entries(patch)) {
      if (v === null || v === undefined || v === '') u.searchParams.delete(k); else u.searchParams.set(k, v);
    }
    history.replaceState(null, '', u.pathname + u.search);
  }

  async function loadList() {
    try { cfgs = list(await api.configs(), 'configs'); } catch (e) {
      if (e.status !== 401 && alive) replace(nav, h('li', { class: 'error-text panel-body' }, e.message));
      return;
    }
    if (!alive) return;
    cfgs.sort((a, b) => a.name.localeCompare(b.name));
    // Unchanged: keep the elements (a refresh must not eat a click).
    const key = cfgs.map((c) => c.name + '@' + c.version).join();
    if (key === listKey) return;
    listKey = key;
    replace(nav, cfgs.length ? cfgs.map((c) => h('li', null,
      h('a', { href: '/configs/' + encodeURIComponent(c.name), 'aria-current': c.name === name ? 'page' : null, 'data-testid': 'config-link', 'data-name': c.name },
        h('span', { class: 'mono' }, c.name), h('span', { class: 'v' }, 'v' + c.version))))
      : h('li', { class: 'muted panel-body' }, 'No configuration yet.'));
    if (!name) renderIndex();
  }

  function renderIndex() {
    replace(detail, h('section', { class: 'panel' },
      h('div', { class: 'panel-head' }, h('h2', null, 'All configurations')),
      cfgs.length ? h('table', { class: 'data', 'data-testid': 'configs-table' },
        h('thead', null, h('tr', null, ['Name', 'Latest', 'Files', 'Hash', 'Comment', 'Author', 'Saved'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, cfgs.map((c) => h('tr', null,
          h('td', null, h('a', { class: 'mono', href: '/configs/' + encodeURIComponent(c.name) }, c.name)),
          h('td', null, 'v' + c.version),
          h('td', null, String(Object.keys(c.files || {}).length)),
          h('td', { class: 'mono', title: hashHex(c.hash) }, shortHash(c.hash)),
          h('td', null, c.comment || ''),
          h('td', null, c.author || ''),
          h('td', null, timeEl(c.created_at))))))
        : h('div', { class: 'panel-body muted' }, 'Create a configuration, then assign it to agents by label selector.')));
  }

  async function loadDetail() {
    if (!name) return;
    try {
      versions = list(await api.configVersions(name), 'versions');
    } catch (e) {
      if (e.status === 401 || !alive) return;
      replace(detail, h('div', { class: 'panel panel-body' }, h('h2', null, e.status === 404 ? 'No such configuration' : 'Could not load the configuration'), h('p', { class: 'muted', 'data-testid': 'config-error' }, e.message)));
      return;
    }
    if (!alive) return;
    versions.sort((a, b) => b.version - a.version);
    const key = versions.map((v) => v.version).join();
    if (key === detailKey) return;
    detailKey = key;
    renderDetail();
  }

  function renderDetail() {
    if (sub) { sub(); sub = null; }
    const latest = versions[0];
    const tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Configuration' }, TABS.map((t, i) => h('button', {
      type: 'button', role: 'tab', id: 'ctab-' + t.key, 'aria-selected': String(t.key === tab), 'aria-controls': 'ctp', tabindex: t.key === tab ? '0' : '-1', 'data-testid': 'config-tab-' + t.key,
      onclick: () => { tab = t.key; setQuery({ tab: t.key === 'versions' ? null : t.key }); renderDetail(); },
      onkeydown: (e) => {
        const j = e.key === 'ArrowRight' ? (i + 1) % TABS.length : e.key === 'ArrowLeft' ? (i - 1 + TABS.length) % TABS.length : null;
        if (j !== null) { e.preventDefault(); tab = TABS[j].key; setQuery({ tab: tab === 'versions' ? null : tab }); renderDetail(); detail.querySelector('[aria-selected="true"]').focus(); }
      },
    }, t.label, t.key === 'versions' ? h('span', { class: 'count' }, String(versions.length)) : null)));
    const body = h('div', { role: 'tabpanel', id: 'ctp', 'aria-labelledby': 'ctab-' + tab, 'data-testid': 'config-tab-panel-' + tab });
    replace(detail,
      h('div', { class: 'page-head', style: 'margin-bottom:10px' },
        h('div', { class: 'titles' },
          h('h2', { class: 'mono', style: 'font-size:17px', 'data-testid': 'config-name' }, name),
          h('div', { class: 'sub' }, h('span', { 'data-testid': 'config-latest' }, 'latest v' + (latest ? latest.version : '?')),
            latest ? h('span', null, 'saved ', timeEl(latest.created_at), latest.author ? ' by ' + latest.author : '') : null,
            latest ? h('span', { class: 'mono', title: hashHex(latest.hash) }, shortHash(latest.hash)) : null)),
        h('div', { class: 'actions' }, h('button', { type: 'button', class: 'small danger', 'data-testid': 'config-delete', onclick: deleteConfig }, 'Delete configuration'))),
      tabs, body);
    if (tab === 'versions') renderVersions(body);
    else if (tab === 'view') renderView(body);
    else if (tab === 'diff') renderDiffTab(body);
    else if (tab === 'edit') body.append(editorForm(latest, name, () => { tab = 'versions'; setQuery({ tab: null }); detailKey = null; loadList(); loadDetail(); }));
    else if (tab === 'assignments') { const v = assignmentsView({ config: name }); body.append(v.node); sub = v.cleanup; }
  }

  async function deleteConfig() {
    const ok = await openDialog({
      title: 'Delete configuration', submitLabel: 'Delete', danger: true, testid: 'config-delete-dialog',
      body: h('p', null, `Delete "${name}" and all ${versions.length} of its versions? Agents keep running what they have. A configuration still assigned cannot be deleted: remove its assignments first.`),
      onSubmit: () => api.deleteConfig(name),
    });
    if (ok) {
      toast(`Deleted ${name}.`);
      ctx.navigate('/configs');
    }
  }

  function go(patch) {
    if (patch.tab) tab = patch.tab;
    setQuery(patch);
    renderDetail();
  }

  function renderVersions(body) {
    body.append(h('section', { class: 'panel' }, h('table', { class: 'data', 'data-testid': 'config-versions' },
      h('thead', null, h('tr', null, ['Version', 'Saved', 'Author', 'Comment', 'Hash', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, versions.map((v, i) => h('tr', { 'data-testid': 'config-version', 'data-version': v.version },
        h('td', null, h('strong', null, 'v' + v.version), i === 0 ? h('span', { class: 'badge info plain', style: 'margin-left:6px' }, 'latest') : null),
        h('td', { title: fmtTime(v.created_at) }, timeEl(v.created_at)),
        h('td', null, v.author || ''),
        h('td', null, v.comment || h('span', { class: 'faint' }, '—')),
        h('td', { class: 'mono', title: hashHex(v.hash) }, shortHash(v.hash)),
        h('td', { class: 'right nowrap' },
          h('button', { type: 'button', class: 'small', 'data-testid': 'version-view', onclick: () => go({ tab: 'view', version: v.version }) }, 'View'), ' ',
          i < versions.length - 1 ? h('button', { type: 'button', class: 'small', 'data-testid': 'version-diff',
            onclick: () => go({ tab: 'diff', from: versions[i + 1].version, to: v.version }) }, 'Diff with v' + versions[i + 1].version) : null)))))));
  }

  function versionSelect(id, value, testid) {
    return h('select', { id, 'data-testid': testid }, versions.map((v) => h('option', { value: String(v.version), selected: v.version === value }, 'v' + v.version + (v.comment ? ' — ' + v.comment : ''))));
  }

  async function renderView(body) {
    const want = parseInt(new URL(location.href).searchParams.get('version'), 10) || (versions[0] && versions[0].version);
    const sel = versionSelect('view-version', want, 'view-version');
    const out = h('div', { class: 'panel-body' }, 'Loading…');
    sel.addEventListener('change', () => go({ version: sel.value }));
    body.append(h('section', { class: 'panel' },
      h('div', { class: 'panel-head' }, h('h2', null, 'Files'), h('label', { for: 'view-version', class: 'muted' }, 'Version'), sel), out));
    try {
      const c = await api.config(name, want);
      if (!alive) return;
      replace(out, c.comment ? h('p', { class: 'muted', style: 'margin-top:0' }, c.comment) : null, configFiles(c.files, 'config-files'));
    } catch (e) {
      if (alive) replace(out, h('p', { class: 'error-text' }, e.message));
    }
  }

  async function renderDiffTab(body) {
    if (versions.length < 2) {
      body.append(h('div', { class: 'panel panel-body muted', 'data-testid': 'diff' }, 'Only one version exists; there is nothing to compare yet.'));
      return;
    }
    const p = new URL(location.href).searchParams;
    const to = parseInt(p.get('to'), 10) || versions[0].version;
    const from = parseInt(p.get('from'), 10) || (versions.find((v) => v.version < to) || versions[versions.length - 1]).version;
    const fromSel = versionSelect('diff-from', from, 'diff-from');
    const toSel = versionSelect('diff-to', to, 'diff-to');
    const change = () => go({ from: fromSel.value, to: toSel.value });
    fromSel.addEventListener('change', change);
    toSel.addEventListener('change', change);
    const stat = h('span');
    const out = h('div', { class: 'panel-body flush' }, h('p', { class: 'panel-body muted' }, 'Loading…'));
    body.append(h('section', { class: 'panel' },
      h('div', { class: 'panel-head' }, h('h2', null, 'Compare'),
        h('label', { for: 'diff-from', class: 'muted' }, 'From'), fromSel,
        h('label', { for: 'diff-to', class: 'muted' }, 'to'), toSel, stat),
      out));
    try {
      const d = await api.configDiff(name, from, to);
      if (!alive) return;
      const r = renderDiff(typeof d === 'string' ? d : (d && d.diff) || '');
      replace(stat, r.stat);
      replace(out, h('div', { class: 'table-wrap' }, r.table));
    } catch (e) {
      if (alive) replace(out, h('p', { class: 'error-text panel-body' }, e.message));
    }
  }

  loadList();
  loadDetail();
  const refresh = throttle(() => { loadList(); if (tab === 'versions') loadDetail(); }, 400);
  const off = on((ev) => { if (ev.type === 'config.changed' || ev.type === 'resync') refresh(); });
  return () => { alive = false; off(); refresh.cancel(); if (sub) sub(); };
}
