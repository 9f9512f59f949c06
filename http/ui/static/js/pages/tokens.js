// Tokens: API tokens (for scripts and CI, with a role) and enrollment
// tokens (that admit new agents). A new token's secret is shown once.
import { h, replace, timeEl, toast, badge } from '../dom.js';
import { request, list } from '../api.js';
import { openDialog, confirmDialog } from '../dialog.js';
import { allows, adminHead, showError, secretBox, table, emptyRow } from '../admin.js';

const enc = encodeURIComponent;

/** expiry renders an expiry time, or "never". */
function expiry(t) {
  if (!t.expires_at) return h('span', { class: 'faint' }, 'never');
  if (new Date(t.expires_at) <= new Date()) return h('span', null, badge('Expired', 'warn'), ' ', timeEl(t.expires_at));
  return timeEl(t.expires_at);
}

/** ttlField is a select of lifetimes, as Go durations. */
function ttlField(id, testid, options) {
  return h('select', { id, 'data-testid': testid }, options.map(([v, l]) => h('option', { value: v }, l)));
}

/**
 * createDialog asks for a new token's fields, creates it, then shows its
 * secret once in a second dialog.
 */
async function createDialog({ title, testid, body, submit, path, note }) {
  let created = null;
  const ok = await openDialog({
    title, submitLabel: 'Create', testid, body,
    onSubmit: async () => { created = await request('POST', path, submit()); },
  });
  if (!ok || !created) return false;
  await openDialog({
    title: `Token "${created.token.name}" created`, submitLabel: 'Done', testid: testid + '-secret',
    body: secretBox(created.secret, 'token-secret', note),
  });
  return true;
}

function newApiToken() {
  const name = h('input', { type: 'text', id: 'tk-name', required: true, placeholder: 'ci-deploy', 'data-testid': 'token-name' });
  const role = h('select', { id: 'tk-role', 'data-testid': 'token-role' }, ['viewer', 'operator', 'admin'].map((r) => h('option', { value: r }, r)));
  const ttl = ttlField('tk-ttl', 'token-ttl', [['', 'Never'], ['24h', '1 day'], ['720h', '30 days'], ['2160h', '90 days'], ['8760h', '1 year']]);
  return createDialog({
    title: 'New API token', testid: 'token-dialog', path: '/tokens',
    note: 'send it as "Authorization: Bearer <token>". Steward keeps only its hash and shows it only this once.',
    body: h('div', { class: 'form-grid' },
      h('div', { class: 'field full' }, h('label', { for: 'tk-name' }, 'Name'), name),
      h('div', { class: 'field' }, h('label', { for: 'tk-role' }, 'Role'), role,
        h('span', { class: 'hint' }, 'viewer reads; operator also changes configs, assignments, rollouts, packages and agents; admin also manages credentials.')),
      h('div', { class: 'field' }, h('label', { for: 'tk-ttl' }, 'Expires after'), ttl)),
    submit: () => {
      if (!name.value.trim()) throw new Error('Enter a name.');
      return { name: name.value.trim(), role: role.value, ttl: ttl.value || undefined };
    },
  });
}

function newEnrollmentToken() {
  const name = h('input', { type: 'text', id: 'en-name', required: true, placeholder: 'eu-west-collectors', 'data-testid': 'enrollment-name' });
  const selector = h('input', { type: 'text', id: 'en-selector', class: 'mono', placeholder: 'env=prod', 'data-testid': 'enrollment-selector' });
  const uses = h('input', { type: 'number', id: 'en-uses', min: '0', value: '0', 'data-testid': 'enrollment-max-uses' });
  const ttl = ttlField('en-ttl', 'enrollment-ttl', [['24h', '1 day'], ['168h', '7 days'], ['720h', '30 days'], ['', 'Never']]);
  return createDialog({
    title: 'New enrollment token', testid: 'enrollment-dialog', path: '/enrollment-tokens',
    note: 'agents present it as "Authorization: Bearer <token>" until they hold a client certificate. Steward shows it only this once.',
    body: h('div', { class: 'form-grid' },
      h('div', { class: 'field full' }, h('label', { for: 'en-name' }, 'Name'), name),
      h('div', { class: 'field full' }, h('label', { for: 'en-selector' }, 'Required labels (selector)'), selector,
        h('span', { class: 'hint' }, 'Optional: an agent whose reported labels do not match is refused.')),
      h('div', { class: 'field' }, h('label', { for: 'en-uses' }, 'Max agents (0: no limit)'), uses),
      h('div', { class: 'field' }, h('label', { for: 'en-ttl' }, 'Expires after'), ttl)),
    submit: () => {
      if (!name.value.trim()) throw new Error('Enter a name.');
      const n = parseInt(uses.value, 10);
      if (!(n >= 0)) throw new Error('Max agents must be 0 or more.');
      return { name: name.value.trim(), selector: selector.value.trim() || undefined, max_uses: n || undefined, ttl: ttl.value || undefined };
    },
  });
}

/** enrollmentState names why an enrollment token can or cannot admit agents. */
function enrollmentState(t) {
  if (t.revoked) return badge('Revoked', '', 'enrollment-state');
  if (t.expires_at && new Date(t.expires_at) <= new Date()) return badge('Expired', 'warn', 'enrollment-state');
  if (t.max_uses && t.uses >= t.max_uses) return badge('Used up', 'warn', 'enrollment-state');
  return badge('Active', 'ok', 'enrollment-state');
}

export function mount(root, ctx) {
  ctx.setTitle('Tokens');
  const admin = allows(ctx, 'admin');
  const apiRows = h('tbody', { 'data-testid': 'tokens-rows' });
  const enrRows = h('tbody', { 'data-testid': 'enrollment-rows' });
  const apiErr = h('div'), enrErr = h('div');
  const btn = (testid, label, fn) => admin ? h('button', { type: 'button', class: 'primary small', 'data-testid': testid, onclick: async () => { if (await fn()) load(); } }, label) : null;
  root.append(...adminHead('Tokens', 'API tokens let scripts call the REST API with a role; enrollment tokens admit new agents. Secrets are shown once, when created.'),
    h('div', { class: 'stack' },
      h('section', { class: 'panel', 'aria-label': 'API tokens' },
        h('div', { class: 'panel-head' }, h('h2', null, 'API tokens'), btn('token-new', 'New API token', newApiToken)),
        apiErr, table('tokens-table', ['Name', 'Role', 'Created', 'Expires', 'Last used', ''], apiRows)),
      h('section', { class: 'panel', 'aria-label': 'Enrollment tokens' },
        h('div', { class: 'panel-head' }, h('h2', null, 'Enrollment tokens'), btn('enrollment-new', 'New enrollment token', newEnrollmentToken)),
        enrErr, table('enrollment-table', ['Name', 'State', 'Uses', 'Selector', 'Created', 'Expires', 'Last used', ''], enrRows))));

  const revoke = (testid, title, msg, fn) => admin ? h('button', { type: 'button', class: 'small danger', 'data-testid': testid, onclick: async () => {
    if (!(await confirmDialog(title, msg, { confirmLabel: 'Revoke', danger: true, testid: testid + '-dialog' }))) return;
    try { await fn(); toast('Revoked.'); load(); } catch (e) { toast(e.message, 'bad'); }
  } }, 'Revoke') : null;

  let alive = true;
  async function load() {
    try {
      const ts = list(await request('GET', '/tokens'), 'tokens');
      if (!alive) return;
      replace(apiErr);
      replace(apiRows, ts.length ? ts.map((t) => h('tr', { 'data-testid': 'token-row', 'data-name': t.name },
        h('td', null, t.name), h('td', null, badge(t.role, t.role === 'admin' ? 'warn' : 'info')),
        h('td', null, timeEl(t.created_at)), h('td', null, expiry(t)), h('td', null, timeEl(t.last_used)),
        h('td', { class: 'right' }, revoke('token-revoke', 'Revoke API token', `Revoke "${t.name}"? Requests with it are refused from now on.`, () => request('DELETE', '/tokens/' + enc(t.id))))))
        : emptyRow(6, 'No API token. Create one for scripts, CI or the steward CLI.'));
    } catch (e) { if (alive) showError(apiErr, e, 'API tokens'); }
    try {
      const es = list(await request('GET', '/enrollment-tokens'), 'tokens');
      if (!alive) return;
      replace(enrErr);
      replace(enrRows, es.length ? es.map((t) => h('tr', { 'data-testid': 'enrollment-row', 'data-name': t.name, 'data-revoked': String(!!t.revoked) },
        h('td', null, t.name), h('td', null, enrollmentState(t)),
        h('td', { class: 'nowrap', 'data-testid': 'enrollment-uses' }, t.max_uses ? `${t.uses} of ${t.max_uses}` : `${t.uses}`),
        h('td', { class: 'mono' }, t.selector || h('span', { class: 'faint' }, 'any agent')),
        h('td', null, timeEl(t.created_at)), h('td', null, expiry(t)), h('td', null, timeEl(t.last_used)),
        h('td', { class: 'right' }, t.revoked ? null : revoke('enrollment-revoke', 'Revoke enrollment token', `Revoke "${t.name}"? New agents cannot enroll with it; agents already enrolled keep their certificates.`, () => request('DELETE', '/enrollment-tokens/' + enc(t.id))))))
        : emptyRow(8, 'No enrollment token. Create one to let new agents connect and receive a client certificate.'));
    } catch (e) { if (alive) showError(enrErr, e, 'enrollment tokens'); }
  }
  load();
  return () => { alive = false; };
}
