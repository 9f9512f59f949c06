// The agent's client certificates (issued by Steward's agent CA): serial,
// validity, status, and a Revoke button. Revoking disconnects the agent and
// refuses its next connection with that certificate (admin only).
import { h, fmtTime, timeEl, badge, toast } from '../../dom.js';
import { request, qs, list } from '../../api.js';
import { confirmDialog } from '../../dialog.js';
import { hashChip } from '../../eventview.js';

/** loadCertificates lists the agent's certificates, newest first; null when the server keeps none (501). */
export async function loadCertificates(id, opts) {
  try {
    return list(await request('GET', '/certificates' + qs({ agent: id }), undefined, opts), 'certificates');
  } catch (e) {
    if (e.status === 501) return null;
    throw e;
  }
}

function status(c, now) {
  if (c.revoked) return badge('Revoked', 'bad', 'cert-status');
  const left = new Date(c.not_after).getTime() - now;
  if (left <= 0) return badge('Expired', '', 'cert-status');
  const days = Math.floor(left / 86400000);
  if (days >= 14) return badge('Valid', 'ok', 'cert-status');
  return badge(days >= 1 ? `Valid, ${days}d left` : `Valid, ${Math.max(1, Math.floor(left / 3600000))}h left`, 'warn', 'cert-status');
}

/** certificatesTable renders them; onRevoked is called after a revocation. */
export function certificatesTable(certs, error, onRevoked) {
  if (error) return h('p', { class: 'error-text panel-body', 'data-testid': 'agent-certificates' }, error);
  if (certs === null) return h('p', { class: 'muted panel-body', 'data-testid': 'agent-certificates' }, 'This server issues no agent certificates.');
  if (!certs.length) return h('p', { class: 'muted panel-body', 'data-testid': 'agent-certificates' }, 'Steward has issued no client certificate to this agent.');
  const now = Date.now();
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data', 'data-testid': 'agent-certificates' },
    h('thead', null, h('tr', null, ['Serial', 'Expires', 'Status', ''].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, certs.map((c) => h('tr', { 'data-testid': 'agent-certificate', 'data-serial': c.serial },
      h('td', null, hashChip(c.serial, 'cert-serial')),
      h('td', { class: 'nowrap', title: 'Valid from ' + fmtTime(c.not_before) }, timeEl(c.not_after)),
      h('td', null, status(c, now), c.revoked && c.revoked_at ? h('span', { class: 'faint' }, ' ', fmtTime(c.revoked_at)) : null),
      h('td', { class: 'right' }, c.revoked ? null : h('button', { type: 'button', class: 'small danger', 'data-testid': 'cert-revoke', onclick: () => revoke(c, onRevoked) }, 'Revoke')))))));
}

async function revoke(c, onRevoked) {
  const ok = await confirmDialog('Revoke certificate',
    `Revoke certificate ${c.serial}? The agent is disconnected now, and refused whenever it connects with this certificate again. It needs a new certificate (enrollment) to reconnect.`,
    { confirmLabel: 'Revoke', danger: true, testid: 'revoke-cert-dialog' });
  if (!ok) return;
  try {
    await request('POST', '/certificates/' + encodeURIComponent(c.serial) + '/revoke', {});
    toast('Certificate revoked.');
    onRevoked();
  } catch (e) {
    toast('Revoke failed: ' + e.message, 'bad');
  }
}
