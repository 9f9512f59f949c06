// Certificates: the client certificates Steward's agent CA issued, across
// the fleet, with their expiry; an admin revokes one (the agent is then
// refused until it enrolls again).
import { h, replace, timeEl, toast, badge, fmtTime, shortId } from '../dom.js';
import { request, list, qs } from '../api.js';
import { confirmDialog } from '../dialog.js';
import { allows, adminHead, showError, table, emptyRow } from '../admin.js';

const SOON = 7 * 24 * 3600 * 1000;

/** certState is a certificate's status: revoked, expired, expiring or valid. */
export function certState(c, now = Date.now()) {
  const end = new Date(c.not_after).getTime();
  if (c.revoked) return ['revoked', 'Revoked', 'bad'];
  if (end <= now) return ['expired', 'Expired', ''];
  if (end - now < SOON) return ['expiring', 'Expires soon', 'warn'];
  return ['valid', 'Valid', 'ok'];
}

export function mount(root, ctx) {
  ctx.setTitle('Certificates');
  const admin = allows(ctx, 'admin');
  const status = h('select', { id: 'cert-status', 'data-testid': 'cert-status-filter' },
    [['', 'All'], ['valid', 'Valid'], ['expiring', 'Expiring within 7 days'], ['expired', 'Expired'], ['revoked', 'Revoked']].map(([v, l]) => h('option', { value: v }, l)));
  status.value = ctx.query.get('status') || '';
  const agent = h('input', { type: 'search', id: 'cert-agent', class: 'mono', placeholder: 'agent instance id', value: ctx.query.get('agent') || '', 'data-testid': 'cert-agent-filter' });
  const rows = h('tbody', { 'data-testid': 'certs-rows' });
  const err = h('div');
  const count = h('span', { class: 'faint', 'data-testid': 'certs-count' });
  root.append(...adminHead('Certificates', 'Client certificates issued by Steward\'s agent CA. A revoked certificate is refused at once; the agent needs an enrollment token to get a new one.'),
    h('div', { class: 'toolbar' },
      h('div', { class: 'field' }, h('label', { for: 'cert-status' }, 'Status'), status),
      h('div', { class: 'field grow' }, h('label', { for: 'cert-agent' }, 'Agent'), agent)),
    err,
    h('section', { class: 'panel', 'aria-label': 'Certificates' },
      h('div', { class: 'panel-head' }, h('h2', null, 'Agent certificates'), count),
      table('certs-table', ['Agent', 'Serial', 'Status', 'Issued', 'Expires', 'Revoked', ''], rows)));

  function row(c) {
    const [st, label, kind] = certState(c);
    return h('tr', { 'data-testid': 'cert-row', 'data-serial': c.serial, 'data-state': st },
      h('td', null, h('a', { class: 'mono', href: '/agents/' + encodeURIComponent(c.agent_id), title: c.agent_id }, shortId(c.agent_id))),
      h('td', { class: 'mono', title: c.serial }, c.serial.length > 16 ? c.serial.slice(0, 16) + '…' : c.serial),
      h('td', null, badge(label, kind, 'cert-state')),
      h('td', { title: fmtTime(c.not_before) }, timeEl(c.not_before)),
      h('td', { class: 'nowrap', title: fmtTime(c.not_after) }, fmtTime(c.not_after), ' (', timeEl(c.not_after), ')'),
      h('td', null, c.revoked ? timeEl(c.revoked_at) : ''),
      h('td', { class: 'right' }, admin && !c.revoked ? h('button', { type: 'button', class: 'small danger', 'data-testid': 'cert-revoke', onclick: async () => {
        if (!(await confirmDialog('Revoke certificate', `Revoke certificate ${c.serial} of agent ${c.agent_id}? The agent is disconnected and refused with it from now on; it can only come back by enrolling again with an enrollment token.`,
          { confirmLabel: 'Revoke', danger: true, testid: 'cert-revoke-dialog' }))) return;
        try { await request('POST', '/certificates/' + encodeURIComponent(c.serial) + '/revoke', {}); toast('Certificate revoked.'); load(); } catch (e) { toast(e.message, 'bad'); }
      } }, 'Revoke') : null));
  }

  let alive = true, all = [];
  function render() {
    const shown = all.filter((c) => !status.value || certState(c)[0] === status.value);
    count.textContent = `${shown.length} of ${all.length}`;
    replace(rows, shown.length ? shown.map(row) : emptyRow(7, all.length ? 'No certificate matches.' : 'No certificate issued yet. Agents get one when they enroll with an enrollment token.'));
  }
  async function load() {
    try {
      all = list(await request('GET', '/certificates' + qs({ agent: agent.value.trim() })), 'certificates');
    } catch (e) { if (alive) showError(err, e, 'certificates'); return; }
    if (!alive) return;
    replace(err);
    all.sort((x, y) => String(y.not_before).localeCompare(String(x.not_before)));
    render();
  }
  const keep = () => {
    const u = new URL(location.href);
    for (const [k, v] of [['status', status.value], ['agent', agent.value.trim()]]) { if (v) u.searchParams.set(k, v); else u.searchParams.delete(k); }
    history.replaceState(null, '', u.pathname + u.search);
  };
  status.addEventListener('change', () => { keep(); render(); });
  agent.addEventListener('change', () => { keep(); load(); });
  load();
  return () => { alive = false; };
}
