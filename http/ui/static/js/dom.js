// DOM helpers. Everything the API returns is inserted as text, never parsed
// as HTML.

/**
 * h builds an element: h('a', {href: '/x', class: 'y', onclick: fn}, 'text', child).
 * Attributes whose value is null, undefined or false are skipped; `true`
 * sets an empty attribute. Children may be strings, numbers, nodes, arrays
 * or null.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') {
        el.addEventListener(k.slice(2), v);
      } else if (k === 'class') {
        el.className = v;
      } else if (k === 'style') {
        // CSSOM, not the attribute: the CSP forbids inline style attributes.
        el.style.cssText = v;
      } else if (k === 'value' && 'value' in el) {
        el.value = v;
      } else if (k === 'checked' || k === 'selected') {
        el[k] = !!v;
      } else {
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** replace empties el and appends children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** fmtTime renders an ISO time in the viewer's locale, "—" when unset. */
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** ago renders the time since iso, e.g. "12s ago". */
export function ago(iso) {
  if (!iso) return '—';
  const t = new Date(iso).getTime();
  if (isNaN(t)) return String(iso);
  let s = Math.round((Date.now() - t) / 1000);
  const fut = s < 0;
  s = Math.abs(s);
  let out;
  if (s < 5) return 'just now';
  if (s < 60) out = s + 's';
  else if (s < 3600) out = Math.floor(s / 60) + 'm';
  else if (s < 86400) out = Math.floor(s / 3600) + 'h';
  else out = Math.floor(s / 86400) + 'd';
  return fut ? 'in ' + out : out + ' ago';
}

/** timeEl is a <time> showing relative time, refreshed by tickTimes. */
export function timeEl(iso) {
  if (!iso) return h('span', { class: 'faint' }, '—');
  return h('time', { datetime: iso, title: fmtTime(iso), 'data-rel': '' }, ago(iso));
}

/** tickTimes refreshes every relative <time> in the document. */
export function tickTimes() {
  for (const t of document.querySelectorAll('time[data-rel]')) {
    t.textContent = ago(t.getAttribute('datetime'));
  }
}

/** hashHex returns an API hash as shown: the API writes every hash in hex. */
export function hashHex(h) {
  return h ? String(h) : '';
}

/** shortHash is the first 12 hex digits of a hash. */
export function shortHash(h) {
  const x = hashHex(h);
  return x ? x.slice(0, 12) : '—';
}

/** attrValue renders an attribute value (string, number, bool, list, map). */
export function attrValue(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** toast shows a short message in the live region. */
export function toast(msg, kind) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = h('div', { class: 'toast' + (kind ? ' ' + kind : ''), 'data-testid': 'toast' }, msg);
  box.appendChild(t);
  setTimeout(() => t.remove(), kind === 'bad' ? 8000 : 4000);
}

/** copyText copies to the clipboard, falling back to a hidden textarea. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = h('textarea', { class: 'sr-only', 'aria-hidden': 'true' });
    ta.value = text;
    document.body.appendChild(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    ta.remove();
    return ok;
  }
}

/** debounce delays fn until ms have passed without another call. */
export function debounce(fn, ms) {
  let t;
  const d = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
  d.cancel = () => clearTimeout(t);
  return d;
}

/**
 * throttle runs fn at most once per ms, after the first call of a burst and
 * then at the end of each period while calls keep coming: a page refreshed
 * by a steady stream of fleet events still refreshes, but never more often
 * than every ms.
 */
export function throttle(fn, ms) {
  let t = null;
  let last = 0;
  const th = () => {
    if (t) return;
    const wait = Math.max(0, last + ms - Date.now());
    t = setTimeout(() => { t = null; last = Date.now(); fn(); }, Math.max(wait, 50));
  };
  th.cancel = () => { clearTimeout(t); t = null; };
  return th;
}

/** badge renders a status pill; kind is ok, bad, warn, info or ''. */
export function badge(text, kind, testid) {
  return h('span', { class: 'badge' + (kind ? ' ' + kind : ''), 'data-testid': testid }, text);
}

/** configStatusKind maps a remote config state to a badge kind. */
export function configStatusKind(s) {
  switch (s) {
    case 'APPLIED': return 'ok';
    case 'FAILED': return 'bad';
    case 'APPLYING': return 'warn';
    default: return '';
  }
}

/** SYNC_STATES are the agent sync states, in display order, with labels. */
export const SYNC_STATES = [
  ['in_sync', 'In sync'], ['pending', 'Pending'], ['applying', 'Applying'], ['failed', 'Failed'],
  ['rolled_back', 'Rolled back'], ['drifted', 'Drifted'], ['offline', 'Offline'],
];

/** syncLabel names a sync state. */
export function syncLabel(s) {
  const e = SYNC_STATES.find(([k]) => k === s);
  return e ? e[1] : (s || 'Unknown');
}

/** syncKind maps a sync state to a badge kind. */
export function syncKind(s) {
  switch (s) {
    case 'in_sync': return 'ok';
    case 'failed': case 'rolled_back': case 'drifted': return 'bad';
    case 'pending': case 'applying': return 'warn';
    default: return '';
  }
}

/** configsText renders a KnownConfig's composition: "base@2, extra@1". */
export function configsText(k) {
  if (!k) return '';
  const cs = k.configs || [];
  return cs.length ? cs.map((c) => `${c.config}@${c.version}`).join(', ') : '(empty config)';
}

/** agentName picks the most readable name an agent reported. */
export function agentName(a) {
  return attr(a, 'service.name') || attr(a, 'host.name') || shortId(a.id);
}

/** attr returns a reported attribute, identifying first. */
export function attr(a, key) {
  const d = a && a.description;
  if (!d) return '';
  for (const list of [d.identifying_attributes, d.non_identifying_attributes]) {
    for (const kv of list || []) if (kv.key === key) return attrValue(kv.value);
  }
  return '';
}

/**
 * shortId abbreviates an instance uid to its last 8 hex digits: new uids
 * are UUID v7, whose leading digits are a timestamp shared by agents
 * started together, while the tail is random.
 */
export function shortId(id) {
  return id ? String(id).replace(/-/g, '').slice(-8) : '';
}

/** fileLabel names a config file; the empty name is the default file. */
export function fileLabel(name) {
  return name === '' ? '(default)' : name;
}
