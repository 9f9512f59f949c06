// Live updates: one EventSource on /api/v1/events/stream shared by every
// page. Pages subscribe with on(fn) and get each event object. When the
// stream fails the browser retries by itself; if it gives up (the server
// refused the stream, e.g. a 401 after the session expired) we reconnect
// with backoff and let the API client notice the 401.

export const EVENT_TYPES = [
  'agent.connected', 'agent.disconnected', 'agent.updated', 'agent.health',
  'agent.config_status', 'agent.config_sent', 'agent.command_sent',
  'agent.custom_message', 'agent.package_status', 'config.changed',
  'assignment.changed', 'agent.deleted', 'rollout.changed', 'rollout.progress',
];

import { api, unauthorized } from './api.js';

const listeners = new Set();
const stateListeners = new Set();
let es = null;
let retry = 1000;
let timer = null;
let state = 'off';
let wanted = false;

function setState(s) {
  if (s === state) return;
  state = s;
  for (const fn of stateListeners) fn(s);
}

function dispatch(type, raw) {
  let ev;
  try { ev = JSON.parse(raw); } catch { return; }
  if (ev && !ev.type) ev.type = type;
  for (const fn of [...listeners]) {
    try { fn(ev); } catch (e) { console.error('event listener', e); }
  }
}

function open() {
  clearTimeout(timer);
  if (es) es.close();
  es = new EventSource('/api/v1/events/stream', { withCredentials: true });
  setState('connecting');
  es.onopen = () => {
    retry = 1000;
    const missed = state === 'reconnecting';
    setState('live');
    // Events may have been lost while disconnected: pages reload.
    if (missed) dispatch('resync', '{"type":"resync"}');
  };
  es.onmessage = (m) => dispatch('message', m.data);
  for (const t of EVENT_TYPES) es.addEventListener(t, (m) => dispatch(t, m.data));
  // The server drops a subscriber that fell behind with "resync", then ends
  // the stream; the browser reconnects by itself.
  es.addEventListener('resync', () => dispatch('resync', '{"type":"resync"}'));
  es.onerror = () => {
    if (!wanted) return;
    if (es.readyState === EventSource.CLOSED) {
      setState('reconnecting');
      es.close();
      es = null;
      // The browser gave up: the server refused the stream. If the session
      // has ended, send the user to the sign-in form instead of retrying.
      api.session().then((sess) => {
        if (wanted && sess && sess.auth_enabled && !sess.authenticated) unauthorized();
      }, () => {});
      timer = setTimeout(open, retry);
      retry = Math.min(retry * 2, 30000);
    } else {
      setState('reconnecting');
    }
  };
}

// A page left for another keeps its connections while the browser holds it
// in the back/forward cache; an event stream per page left behind would
// soon use up the browser's six connections to the server and stall every
// request. Close the stream when the page is hidden, reopen it if the page
// is shown again.
window.addEventListener('pagehide', () => {
  clearTimeout(timer);
  if (es) es.close();
  es = null;
});
window.addEventListener('pageshow', (e) => {
  if (e.persisted && wanted && !es) {
    open();
    // Events were missed while the page was away.
    dispatch('resync', '{"type":"resync"}');
  }
});

/** start opens the stream (idempotent). */
export function start() {
  wanted = true;
  if (!es) open();
}

/** stop closes the stream (on logout). */
export function stop() {
  wanted = false;
  clearTimeout(timer);
  if (es) es.close();
  es = null;
  setState('off');
}

/** on subscribes fn to every event; returns the unsubscribe function. */
export function on(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** onState subscribes to the connection state: off, connecting, live, reconnecting. */
export function onState(fn) {
  stateListeners.add(fn);
  fn(state);
  return () => stateListeners.delete(fn);
}
