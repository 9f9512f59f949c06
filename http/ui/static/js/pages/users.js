// Users: the people who sign in, with a role each. Admins create local
// users (with a password), change roles, disable, enable and delete them;
// SSO users appear at their first login and get their role from the
// provider's claims at each one.
import { h, replace, timeEl, toast, badge } from '../dom.js';
import { request, list } from '../api.js';
import { openDialog, confirmDialog } from '../dialog.js';
import { adminHead, showError, table, emptyRow } from '../admin.js';

const enc = encodeURIComponent;
const ROLES = ['viewer', 'operator', 'admin'];
const ROLE_HINT = 'viewer reads; operator also changes configs, assignments, rollouts, packages and agents; admin also manages users and credentials.';
const MIN_PASSWORD = 12;

function roleSelect(id, value) {
  return h('select', { id, 'data-testid': 'user-role' }, ROLES.map((r) => h('option', { value: r, selected: r === value }, r)));
}

/** passwordFields returns two password inputs and a check that they agree. */
function passwordFields(prefix) {
  const pw = h('input', { type: 'password', id: prefix + '-pw', autocomplete: 'new-password', 'data-testid': 'user-password' });
  const again = h('input', { type: 'password', id: prefix + '-pw2', autocomplete: 'new-password', 'data-testid': 'user-password-again' });
  const nodes = [
    h('div', { class: 'field' }, h('label', { for: prefix + '-pw' }, 'Password'), pw,
      h('span', { class: 'hint' }, `At least ${MIN_PASSWORD} characters.`)),
    h('div', { class: 'field' }, h('label', { for: prefix + '-pw2' }, 'Password again'), again),
  ];
  const value = () => {
    if (pw.value.length < MIN_PASSWORD) throw new Error(`Use at least ${MIN_PASSWORD} characters.`);
    if (pw.value !== again.value) throw new Error('The passwords differ.');
    return pw.value;
  };
  return { nodes, value };
}

function newUser() {
  const name = h('input', { type: 'text', id: 'us-name', required: true, autocomplete: 'off', placeholder: 'ann', 'data-testid': 'user-name' });
  const role = roleSelect('us-role', 'viewer');
  const pw = passwordFields('us');
  return openDialog({
    title: 'New user', submitLabel: 'Create', testid: 'user-dialog',
    body: h('div', { class: 'form-grid' },
      h('div', { class: 'field' }, h('label', { for: 'us-name' }, 'Name'), name),
      h('div', { class: 'field' }, h('label', { for: 'us-role' }, 'Role'), role),
      h('p', { class: 'hint full' }, ROLE_HINT),
      ...pw.nodes),
    onSubmit: async () => {
      if (!name.value.trim()) throw new Error('Enter a name.');
      await request('POST', '/users', { name: name.value.trim(), role: role.value, password: pw.value() });
      toast(`User ${name.value.trim()} created.`);
    },
  });
}

function editUser(u) {
  const role = roleSelect('ue-role', u.role);
  const pw = u.issuer ? null : passwordFields('ue');
  const setPw = h('input', { type: 'checkbox', id: 'ue-setpw', 'data-testid': 'user-set-password' });
  const pwBox = pw ? h('div', { class: 'form-grid full', hidden: true }, ...pw.nodes) : null;
  if (pw) setPw.addEventListener('change', () => { pwBox.hidden = !setPw.checked; });
  return openDialog({
    title: `Edit user ${u.name}`, testid: 'user-edit-dialog',
    body: h('div', { class: 'form-grid' },
      h('div', { class: 'field' }, h('label', { for: 'ue-role' }, 'Role'), role,
        u.issuer ? h('span', { class: 'hint' }, 'Set again from the provider\'s claims at each single sign-on.') : null),
      h('p', { class: 'hint full' }, ROLE_HINT),
      pw ? h('div', { class: 'field full inline' }, setPw, h('label', { for: 'ue-setpw' }, 'Set a new password (ends the user\'s other sessions)')) : null,
      pwBox),
    onSubmit: async () => {
      const change = {};
      if (role.value !== u.role) change.role = role.value;
      if (pw && setPw.checked) change.password = pw.value();
      if (!Object.keys(change).length) return true;
      await request('PATCH', '/users/' + enc(u.name), change);
      toast(`User ${u.name} saved.`);
    },
  });
}

export function mount(root, ctx) {
  ctx.setTitle('Users');
  const rows = h('tbody', { 'data-testid': 'users-rows' });
  const err = h('div');
  root.append(...adminHead('Users', 'The people who sign in, each with a role. The built-in admin account signs in with the server\'s admin password.',
    h('button', { type: 'button', class: 'primary small', 'data-testid': 'user-new', onclick: async () => { if (await newUser()) load(); } }, 'New user')),
  h('section', { class: 'panel', 'aria-label': 'Users' }, err,
    table('users-table', ['Name', 'Role', 'Signs in with', 'State', 'Created', 'Last login', ''], rows)));

  const act = async (fn, done) => { try { await fn(); toast(done); load(); } catch (e) { toast(e.message, 'bad'); } };
  const actions = (u) => {
    const self = u.name === ctx.user;
    const btn = (testid, label, onclick, cls = 'small') => h('button', { type: 'button', class: cls, 'data-testid': testid, disabled: self && testid !== 'user-edit', onclick }, label);
    return h('td', { class: 'right nowrap' },
      btn('user-edit', 'Edit', async () => { if (await editUser(u)) load(); }), ' ',
      u.disabled
        ? btn('user-enable', 'Enable', () => act(() => request('PATCH', '/users/' + enc(u.name), { disabled: false }), `User ${u.name} enabled.`))
        : btn('user-disable', 'Disable', async () => {
          if (!(await confirmDialog('Disable user', `Disable ${u.name}? Their sessions end now and they cannot sign in until enabled.`, { confirmLabel: 'Disable', danger: true, testid: 'user-disable-dialog' }))) return;
          act(() => request('PATCH', '/users/' + enc(u.name), { disabled: true }), `User ${u.name} disabled.`);
        }), ' ',
      btn('user-delete', 'Delete', async () => {
        if (!(await confirmDialog('Delete user', `Delete ${u.name}? Their sessions end now. The audit log keeps their name.`, { confirmLabel: 'Delete', danger: true, testid: 'user-delete-dialog' }))) return;
        act(() => request('DELETE', '/users/' + enc(u.name)), `User ${u.name} deleted.`);
      }, 'small danger'));
  };

  let alive = true;
  async function load() {
    try {
      const us = list(await request('GET', '/users'), 'users');
      if (!alive) return;
      replace(err);
      replace(rows, us.length ? us.map((u) => h('tr', { 'data-testid': 'user-row', 'data-name': u.name, 'data-role': u.role, 'data-disabled': String(!!u.disabled) },
        h('td', null, u.name),
        h('td', null, badge(u.role, u.role === 'admin' ? 'warn' : 'info', 'user-role-badge')),
        h('td', null, u.issuer ? h('span', { title: u.issuer }, 'Single sign-on') : 'Password'),
        h('td', null, u.disabled ? badge('Disabled', '', 'user-state') : badge('Active', 'ok', 'user-state')),
        h('td', null, timeEl(u.created_at)), h('td', null, timeEl(u.last_login)),
        actions(u)))
        : emptyRow(7, 'No user yet. Create one for each person, with the role they need.'));
    } catch (e) { if (alive) showError(err, e, 'users'); }
  }
  load();
  return () => { alive = false; };
}
