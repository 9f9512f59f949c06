// A rolling buffer of the live events received since the console was
// opened, shown on the overview as the fleet's activity feed.
import { on } from './events.js';

const MAX = 100;
const buf = [];

on((ev) => {
  // Progress measurements are live state, not activity (the event log
  // does not keep them either).
  if (!ev || ev.type === 'resync' || ev.type === 'rollout.progress') return;
  if (ev.id && buf.some((x) => x.id === ev.id)) return;
  buf.unshift(ev);
  if (buf.length > MAX) buf.length = MAX;
});

/** seed merges events loaded from the event log (newest first) into the buffer. */
export function seed(events) {
  const have = new Set(buf.map((x) => x.id));
  for (const ev of events || []) if (!have.has(ev.id)) buf.push(ev);
  buf.sort((a, b) => String(b.time || '').localeCompare(String(a.time || '')) || (b.id || 0) - (a.id || 0));
  if (buf.length > MAX) buf.length = MAX;
}

/** recent returns up to n events, newest first. */
export function recent(n) {
  return buf.slice(0, n);
}

/** eventKind maps an event type to a badge kind. */
export function eventKind(ev) {
  const t = ev.type || '';
  if (t === 'agent.disconnected' || t === 'agent.deleted') return '';
  if (t === 'agent.connected') return 'ok';
  if (t === 'agent.config_status' || t === 'agent.health' || t === 'agent.package_status') {
    const d = JSON.stringify(ev.details || '') + (ev.message || '');
    if (/FAILED|unhealthy|false/.test(d)) return 'bad';
    if (/APPLYING/.test(d)) return 'warn';
    return 'ok';
  }
  return 'info';
}
