// Packages: signed agent binaries and addons. Upload a version (with a
// progress bar), see its signature, offer versions to agents by label
// selector or instance id, and follow each agent's install status live.
import { h, replace, throttle, timeEl, toast, badge, shortHash, hashHex, shortId, agentName } from '../dom.js';
import { request, csrfToken, list, qs } from '../api.js';
import { on } from '../events.js';
import { openDialog, confirmDialog } from '../dialog.js';
import { allows, pageHead, showError, fmtBytes, table, emptyRow } from '../admin.js';

const enc = encodeURIComponent;
const STATUS_KIND = { INSTALLED: 'ok', INSTALL_FAILED: 'bad', INSTALLING: 'warn', DOWNLOADING: 'warn', INSTALL_PENDING: 'warn' };
/** AGENT_LIMIT bounds the agents whose install status the page shows. */
const AGENT_LIMIT = 500;

/**
 * upload PUTs file as package name@version with XMLHttpRequest, whose
 * upload events report progress (fetch has none). onProgress gets a
 * fraction. Resolves to the stored package.
 */
export function upload(file, name, version, type, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('PUT', '/api/v1/packages/' + enc(name) + '/' + enc(version) + qs({ type }));
    x.setRequestHeader('X-Steward-CSRF', csrfToken());
    x.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    x.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    x.onload = () => {
      let data = null;
      try { data = JSON.parse(x.responseText); } catch { data = null; }
      if (x.status >= 200 && x.status < 300) { onProgress(1); resolve(data); return; }
      const err = new Error((data && data.error && data.error.message) || x.statusText || 'HTTP ' + x.status);
      err.status = x.status;
      reject(err);
    };
    x.onerror = () => reject(new Error('The upload was interrupted.'));
    x.send(file);
  });
}

/** signature renders whether and by which key a package is signed. */
function signature(p, keys) {
  if (!p.signature || !p.signed_by) return badge('Unsigned', 'bad', 'package-signature');
  const k = keys.find((x) => x.id === p.signed_by);
  const who = !k ? 'unknown key' : k.server ? 'server key' : 'trusted key';
  return h('span', { title: 'ed25519 over the SHA-256 of the content, key ' + p.signed_by },
    badge('Signed', k ? 'ok' : 'warn', 'package-signature'), ' ', h('span', { class: 'faint' }, who + ' ', h('span', { class: 'mono' }, p.signed_by.slice(0, 8))));
}

function uploadPanel(reload) {
  const file = h('input', { type: 'file', id: 'pk-file', required: true, 'data-testid': 'package-file' });
  const name = h('input', { type: 'text', id: 'pk-name', class: 'mono', required: true, placeholder: 'otelcol', 'data-testid': 'package-name' });
  const version = h('input', { type: 'text', id: 'pk-version', class: 'mono', required: true, placeholder: '0.120.0', 'data-testid': 'package-version' });
  const type = h('select', { id: 'pk-type', 'data-testid': 'package-type' },
    h('option', { value: 'top_level' }, 'Agent (top level)'), h('option', { value: 'addon' }, 'Addon'));
  const bar = h('progress', { max: '100', value: '0', 'data-testid': 'package-progress', 'aria-label': 'Upload progress' });
  const pct = h('span', { class: 'faint', 'data-testid': 'package-progress-text' });
  const prog = h('div', { class: 'inline grow', hidden: true }, bar, pct);
  const err = h('p', { class: 'error-text', role: 'alert', hidden: true, 'data-testid': 'package-upload-error' });
  const btn = h('button', { type: 'submit', class: 'primary', 'data-testid': 'package-upload' }, 'Upload');
  file.addEventListener('change', () => {
    const f = file.files[0];
    if (!f) return;
    // "otelcol-0.120.0.tar.gz" suggests name otelcol and version 0.120.0.
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]*?)[-_]v?(\d[A-Za-z0-9.+~-]*?)(\.(tar\.gz|tgz|zip|deb|rpm|exe))?$/.exec(f.name);
    if (!name.value) name.value = m ? m[1] : f.name.replace(/\.[^.]*$/, '');
    if (!version.value && m) version.value = m[2];
  });
  const form = h('form', { class: 'panel-body form-grid', 'data-testid': 'package-upload-form' },
    h('div', { class: 'field full' }, h('label', { for: 'pk-file' }, 'File'), file),
    h('div', { class: 'field' }, h('label', { for: 'pk-name' }, 'Name'), name),
    h('div', { class: 'field' }, h('label', { for: 'pk-version' }, 'Version'), version),
    h('div', { class: 'field' }, h('label', { for: 'pk-type' }, 'Type'), type),
    h('div', { class: 'field' }, h('span', { class: 'label' }, 'Signature'),
      h('span', { class: 'hint' }, 'The server signs the upload with its key. To sign outside the server, use steward packages upload --signature.')),
    h('div', { class: 'full stack' }, prog, err, h('div', { class: 'actions' }, btn)));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = file.files[0];
    if (!f) return;
    btn.disabled = true;
    err.hidden = true;
    prog.hidden = false;
    const show = (frac) => { bar.value = Math.round(frac * 100); pct.textContent = `${Math.round(frac * 100)}% of ${fmtBytes(f.size)}`; };
    show(0);
    try {
      const p = await upload(f, name.value.trim(), version.value.trim(), type.value, show);
      pct.textContent = `Stored ${p.name}@${p.version}, ${fmtBytes(p.size)}, signed.`;
      toast(`Uploaded ${p.name}@${p.version}.`);
      form.reset();
      reload();
    } catch (ex) {
      err.textContent = ex.message;
      err.hidden = false;
    } finally {
      btn.disabled = false;
    }
  });
  return h('section', { class: 'panel', 'aria-label': 'Upload a package' },
    h('div', { class: 'panel-head' }, h('h2', null, 'Upload a package')), form);
}

/** editAssignment opens the package assignment dialog; resolves true when saved. */
async function editAssignment(existing, pkgs) {
  if (!pkgs.length) { toast('Upload a package first.', 'bad'); return false; }
  const a = existing || { name: '', packages: [], selector: '', priority: 0 };
  const name = h('input', { type: 'text', id: 'pa-name', class: 'mono', required: true, value: a.name, disabled: !!existing, 'data-testid': 'package-assignment-name', placeholder: 'collectors' });
  const chosen = new Set((a.packages || []).map((r) => r.name + '@' + r.version));
  const boxes = h('div', { class: 'stack', role: 'group', 'aria-label': 'Packages' }, pkgs.map((p) => {
    const v = p.name + '@' + p.version;
    return h('label', { class: 'inline' }, h('input', { type: 'checkbox', value: v, checked: chosen.has(v), 'data-testid': 'package-assignment-pick' }), h('span', { class: 'mono' }, v), h('span', { class: 'faint' }, p.type));
  }));
  const selector = h('input', { type: 'text', id: 'pa-selector', class: 'mono', value: a.selector || '', placeholder: 'service.name=otelcol,env=prod', 'data-testid': 'package-assignment-selector' });
  const agent = h('input', { type: 'text', id: 'pa-agent', class: 'mono', value: a.agent_id || '', placeholder: 'or one agent instance id', 'data-testid': 'package-assignment-agent' });
  const prio = h('input', { type: 'number', id: 'pa-prio', value: String(a.priority || 0), 'data-testid': 'package-assignment-priority' });
  return openDialog({
    title: existing ? `Edit package assignment ${a.name}` : 'Assign packages', submitLabel: existing ? 'Save' : 'Assign', testid: 'package-assignment-dialog',
    body: h('div', { class: 'form-grid' },
      h('div', { class: 'field' }, h('label', { for: 'pa-name' }, 'Name'), name),
      h('div', { class: 'field' }, h('label', { for: 'pa-prio' }, 'Priority'), prio),
      h('div', { class: 'field full' }, h('span', { class: 'label' }, 'Packages (one version per name)'), boxes),
      h('div', { class: 'field full' }, h('label', { for: 'pa-selector' }, 'Label selector'), selector,
        h('span', { class: 'hint' }, 'Agents matching it are offered these versions; assigning another version upgrades or downgrades them.')),
      h('div', { class: 'field full' }, h('label', { for: 'pa-agent' }, 'Agent instance id'), agent)),
    onSubmit: async () => {
      const packages = [...boxes.querySelectorAll('input:checked')].map((c) => { const i = c.value.lastIndexOf('@'); return { name: c.value.slice(0, i), version: c.value.slice(i + 1) }; });
      if (!packages.length) throw new Error('Pick at least one package.');
      const body = { name: name.value.trim(), packages, priority: parseInt(prio.value, 10) || 0 };
      if (agent.value.trim()) body.agent_id = agent.value.trim();
      else if (selector.value.trim()) body.selector = selector.value.trim();
      else throw new Error('Enter a label selector or an agent instance id.');
      await request('PUT', '/package-assignments/' + enc(body.name), body);
      toast(existing ? 'Package assignment saved.' : 'Packages assigned.');
    },
  });
}

export function mount(root, ctx) {
  ctx.setTitle('Packages');
  const canWrite = allows(ctx, 'operator');
  let pkgs = [], keys = [], asgs = [];
  const err = h('div');
  const pkgRows = h('tbody', { 'data-testid': 'packages-rows' });
  const asgRows = h('tbody', { 'data-testid': 'package-assignments-rows' });
  const statusRows = h('tbody', { 'data-testid': 'package-status-rows' });
  const statusNote = h('span', { class: 'faint' });
  const assign = canWrite ? h('button', { type: 'button', class: 'primary small', 'data-testid': 'package-assign', onclick: async () => { if (await editAssignment(null, pkgs)) load(); } }, 'Assign packages') : null;
  root.append(
    pageHead('Packages', 'Signed agent executables and addons, offered to agents over OpAMP. Agents download, verify the signature and report their install status.'),
    err,
    h('div', { class: 'stack' },
      canWrite ? uploadPanel(() => load()) : null,
      h('section', { class: 'panel', 'aria-label': 'Packages' },
        h('div', { class: 'panel-head' }, h('h2', null, 'Packages')),
        table('packages-table', ['Name', 'Version', 'Type', 'Size', 'SHA-256', 'Signature', 'Uploaded', ''], pkgRows)),
      h('section', { class: 'panel', 'aria-label': 'Package assignments' },
        h('div', { class: 'panel-head' }, h('h2', null, 'Assignments'), assign),
        table('package-assignments-table', ['Name', 'Packages', 'Target', 'Priority', 'Updated', ''], asgRows)),
      h('section', { class: 'panel', 'aria-label': 'Install status' },
        h('div', { class: 'panel-head' }, h('h2', null, 'Install status'), statusNote),
        table('package-status-table', ['Agent', 'Package', 'Installed', 'Offered', 'Status', 'Detail'], statusRows))));

  function pkgRow(p) {
    return h('tr', { 'data-testid': 'package-row', 'data-name': p.name, 'data-version': p.version },
      h('td', { class: 'mono' }, p.name), h('td', { class: 'mono' }, p.version), h('td', null, p.type),
      h('td', { class: 'nowrap' }, fmtBytes(p.size)),
      h('td', { class: 'mono', title: hashHex(p.hash) }, shortHash(p.hash)),
      h('td', { class: 'nowrap' }, signature(p, keys)),
      h('td', null, timeEl(p.created_at)),
      h('td', { class: 'right nowrap' },
        h('a', { class: 'btn small', href: '/api/v1/packages/' + enc(p.name) + '/' + enc(p.version) + '/content', download: p.name + '-' + p.version }, 'Download'), ' ',
        canWrite ? h('button', { type: 'button', class: 'small danger', 'data-testid': 'package-delete', onclick: async () => {
          if (!(await confirmDialog('Delete package', `Delete ${p.name}@${p.version}? A version that an assignment offers cannot be deleted.`, { confirmLabel: 'Delete', danger: true, testid: 'package-delete-dialog' }))) return;
          try { await request('DELETE', '/packages/' + enc(p.name) + '/' + enc(p.version)); toast('Package deleted.'); load(); } catch (e) { toast(e.message, 'bad'); }
        } }, 'Delete') : null));
  }
  function asgRow(a) {
    return h('tr', { 'data-testid': 'package-assignment-row', 'data-name': a.name },
      h('td', { class: 'mono' }, a.name),
      h('td', { class: 'mono' }, (a.packages || []).map((r) => r.name + '@' + r.version).join(', ')),
      h('td', null, a.agent_id
        ? h('span', null, 'agent ', h('a', { class: 'mono', href: '/agents/' + enc(a.agent_id) }, shortId(a.agent_id)))
        : h('a', { class: 'mono', href: '/agents?selector=' + enc(a.selector), title: 'Show matching agents' }, a.selector)),
      h('td', null, String(a.priority || 0)),
      h('td', null, timeEl(a.updated_at || a.created_at)),
      h('td', { class: 'right nowrap' }, canWrite ? [
        h('button', { type: 'button', class: 'small', 'data-testid': 'package-assignment-edit', onclick: async () => { if (await editAssignment(a, pkgs)) load(); } }, 'Edit'), ' ',
        h('button', { type: 'button', class: 'small danger', 'data-testid': 'package-assignment-delete', onclick: async () => {
          if (!(await confirmDialog('Delete package assignment', `Delete "${a.name}"? Its agents are no longer offered these packages (they keep what they installed).`, { confirmLabel: 'Delete', danger: true, testid: 'package-assignment-delete-dialog' }))) return;
          try { await request('DELETE', '/package-assignments/' + enc(a.name)); toast('Package assignment deleted.'); load(); } catch (e) { toast(e.message, 'bad'); }
        } }, 'Delete')] : null));
  }
  function statusRow(a, name, st) {
    const detail = st.error_message ? h('span', { class: 'error-text' }, st.error_message)
      : st.status === 'DOWNLOADING' ? h('span', { class: 'inline' }, h('progress', { max: '100', value: String(Math.round(st.download_percent || 0)) }), Math.round(st.download_percent || 0) + '%')
        : '';
    return h('tr', { 'data-testid': 'package-status-row', 'data-agent': a.id, 'data-package': name, 'data-status': st.status },
      h('td', null, h('a', { href: '/agents/' + enc(a.id), title: a.id }, agentName(a))),
      h('td', { class: 'mono' }, name),
      h('td', { class: 'mono' }, st.agent_has_version || '—'),
      h('td', { class: 'mono' }, st.server_offered_version || '—'),
      h('td', null, badge(st.status || 'UNKNOWN', STATUS_KIND[st.status] || '', 'package-status')),
      h('td', null, detail));
  }

  let alive = true;
  async function load() {
    let agents;
    try {
      [pkgs, keys, asgs] = await Promise.all([
        request('GET', '/packages').then((r) => list(r, 'packages')),
        request('GET', '/package-keys').then((r) => list(r, 'keys')),
        request('GET', '/package-assignments').then((r) => list(r, 'assignments')),
      ]);
      agents = list(await request('GET', '/agents' + qs({ limit: AGENT_LIMIT })), 'agents');
    } catch (e) {
      if (alive) showError(err, e, 'packages');
      return;
    }
    if (!alive) return;
    replace(err);
    pkgs.sort((x, y) => x.name.localeCompare(y.name) || String(y.created_at).localeCompare(String(x.created_at)));
    replace(pkgRows, pkgs.length ? pkgs.map(pkgRow) : emptyRow(8, 'No package yet. Upload an agent build or an addon.'));
    replace(asgRows, asgs.length ? asgs.map(asgRow) : emptyRow(6, 'No package is assigned to any agent.'));
    const rows = [];
    for (const a of agents) {
      for (const [name, st] of Object.entries((a.package_statuses && a.package_statuses.packages) || {}).sort()) rows.push(statusRow(a, name, st));
    }
    replace(statusRows, rows.length ? rows : emptyRow(6, 'No agent reported a package yet.'));
    statusNote.textContent = agents.length >= AGENT_LIMIT ? `first ${AGENT_LIMIT} agents` : '';
  }
  const refresh = throttle(load, 3000);
  const off = on((ev) => { if (ev.type === 'agent.package_status' || ev.type === 'agent.connected' || ev.type === 'agent.deleted' || ev.type === 'resync') refresh(); });
  load();
  return () => { alive = false; off(); refresh.cancel(); };
}
