// How an event reads in a table: its message on one line (the whole text in
// the tooltip), its details collapsed behind a summary that opens on click,
// and hashes shortened with a copy button.
import { h, copyText, toast } from './dom.js';

const HEX = /^[0-9a-f]{16,}$/i;

/** hashChip shows the first 12 hex digits of a hash, the whole one in the tooltip, and a copy button. */
export function hashChip(hash, testid) {
  const full = String(hash || '');
  if (!full) return h('span', { class: 'faint' }, '—');
  return h('span', { class: 'hash', 'data-testid': testid || 'hash', 'data-hash': full },
    h('span', { class: 'mono', title: full }, full.length > 12 ? full.slice(0, 12) + '…' : full),
    h('button', { type: 'button', class: 'link small', 'aria-label': 'Copy ' + full, title: 'Copy the full value', 'data-testid': 'copy-hash',
      onclick: async (e) => { e.stopPropagation(); toast((await copyText(full)) ? 'Copied.' : 'Copy failed.'); } }, 'copy'));
}

function value(v) {
  if (v === null || v === undefined || v === '') return h('span', { class: 'faint' }, '—');
  if (typeof v === 'string' && HEX.test(v)) return hashChip(v);
  if (typeof v === 'object') return h('span', { class: 'mono' }, JSON.stringify(v));
  return h('span', { class: 'pre' }, String(v));
}

/** eventMessage is the one-line message cell content. */
export function eventMessage(ev) {
  const msg = String(ev.message || '');
  return h('span', { class: 'ev-msg', title: msg, 'data-testid': 'event-message' }, msg);
}

/** eventDetails is the collapsed details of an event ("" when it has none). */
export function eventDetails(ev) {
  const d = ev.details;
  if (d === null || d === undefined || (typeof d === 'object' && !Object.keys(d).length)) return '';
  const entries = typeof d === 'object' && !Array.isArray(d) ? Object.entries(d) : [['value', d]];
  const keys = entries.map(([k]) => k);
  return h('details', { class: 'ev-details', 'data-testid': 'event-details' },
    h('summary', null, keys.length > 3 ? keys.slice(0, 3).join(', ') + ', …' : keys.join(', ')),
    h('dl', null, entries.map(([k, v]) => [h('dt', null, k), h('dd', null, value(v))])));
}
