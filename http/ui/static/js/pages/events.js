// Fleet events: the recent history of every agent and of the desired state,
// newest first, filtered by type, with new events added live.
import { h, replace, fmtTime, badge, shortId } from '../dom.js';
import { api, list } from '../api.js';
import { on, EVENT_TYPES } from '../events.js';
import { eventKind } from '../activity.js';
import { eventMessage, eventDetails } from '../eventview.js';

const MAX = 500;

export function mount(root, ctx) {
  ctx.setTitle('Events');
  const type = h('select', { id: 'ev-type', 'data-testid': 'events-type' },
    h('option', { value: '' }, 'All events'), EVENT_TYPES.map((t) => h('option', { value: t }, t)));
  type.value = EVENT_TYPES.includes(ctx.query.get('type')) ? ctx.query.get('type') : '';
  const tbody = h('tbody', { 'data-testid': 'events-rows' });
  const err = h('div');
  root.append(
    h('div', { class: 'page-head' },
      h('div', { class: 'titles' }, h('h1', { tabindex: '-1' }, 'Events'),
        h('div', { class: 'sub' }, 'What happened across the fleet, newest first. New events appear as they happen.'))),
    h('div', { class: 'toolbar' }, h('div', { class: 'field' }, h('label', { for: 'ev-type' }, 'Type'), type)),
    err,
    h('section', { class: 'panel', 'aria-label': 'Events' }, h('div', { class: 'table-wrap' }, h('table', { class: 'data', 'data-testid': 'events-table' },
      h('thead', null, h('tr', null, ['Time', 'Event', 'Agent', 'Message', 'Details'].map((c) => h('th', { scope: 'col' }, c)))),
      tbody))));

  let events = [];
  const zero = /^0{8}-0{4}-/;
  function row(ev) {
    return h('tr', { 'data-testid': 'event-row', 'data-type': ev.type },
      h('td', { class: 'nowrap', title: ev.time || '' }, fmtTime(ev.time)),
      h('td', { class: 'nowrap' }, badge(ev.type, eventKind(ev))),
      h('td', { class: 'mono' }, ev.agent_id && !zero.test(ev.agent_id) ? h('a', { href: '/agents/' + encodeURIComponent(ev.agent_id), title: ev.agent_id }, shortId(ev.agent_id)) : ''),
      h('td', { class: 'ev-msg-cell' }, eventMessage(ev)),
      h('td', null, eventDetails(ev)));
  }
  function render() {
    replace(tbody, events.length ? events.map(row) : h('tr', null, h('td', { class: 'empty', colspan: 5 }, 'No events.')));
  }

  let alive = true;
  let ctrl = null;
  async function load() {
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    try {
      events = list(await api.events({ limit: 200, type: type.value }, { signal: ctrl.signal }), 'events');
    } catch (e) {
      if (e.name === 'AbortError' || e.status === 401 || !alive) return;
      replace(err, h('div', { class: 'callout bad', style: 'margin-bottom:12px' }, e.status === 501 ? 'This server keeps no event log.' : e.message));
      return;
    }
    if (!alive) return;
    replace(err);
    render();
  }
  type.addEventListener('change', () => {
    const u = new URL(location.href);
    if (type.value) u.searchParams.set('type', type.value); else u.searchParams.delete('type');
    history.replaceState(null, '', u.pathname + u.search);
    load();
  });
  const off = on((ev) => {
    if (ev.type === 'resync') { load(); return; }
    if (type.value && ev.type !== type.value) return;
    if (ev.id && events.some((x) => x.id === ev.id)) return;
    events.unshift(ev);
    if (events.length > MAX) events.length = MAX;
    tbody.prepend(row(ev));
    const empty = tbody.querySelector('td.empty');
    if (empty) empty.parentElement.remove();
    while (tbody.children.length > MAX) tbody.lastElementChild.remove();
  });
  load();
  return () => { alive = false; off(); if (ctrl) ctrl.abort(); };
}
