// Renders a unified diff as a table: old and new line numbers, added lines
// green, removed lines red, hunk headers shaded.
import { h } from './dom.js';

/** parseUnified splits a unified diff into typed lines with line numbers. */
export function parseUnified(text) {
  const out = [];
  let oldNo = 0, newNo = 0;
  const lines = String(text || '').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  for (const l of lines) {
    if (l.startsWith('--- ') || l.startsWith('+++ ') || l.startsWith('diff ') || l.startsWith('index ')) {
      out.push({ kind: 'meta', text: l });
    } else if (l.startsWith('@@')) {
      const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(l);
      if (m) { oldNo = +m[1]; newNo = +m[2]; }
      out.push({ kind: 'hunk', text: l });
    } else if (l.startsWith('+')) {
      out.push({ kind: 'add', text: l.slice(1), newNo: newNo++ });
    } else if (l.startsWith('-')) {
      out.push({ kind: 'del', text: l.slice(1), oldNo: oldNo++ });
    } else if (l.startsWith('\\')) {
      out.push({ kind: 'meta', text: l });
    } else {
      out.push({ kind: 'ctx', text: l.startsWith(' ') ? l.slice(1) : l, oldNo: oldNo++, newNo: newNo++ });
    }
  }
  return out;
}

/** renderDiff returns the diff table and a "+N −M" summary. */
export function renderDiff(text) {
  const lines = parseUnified(text);
  const adds = lines.filter((l) => l.kind === 'add').length;
  const dels = lines.filter((l) => l.kind === 'del').length;
  const stat = h('span', { class: 'diff-stat', 'data-testid': 'diff-stat' },
    h('span', { class: 'add' }, `+${adds}`), ' ', h('span', { class: 'del' }, `−${dels}`));
  if (!lines.length) {
    return { stat, table: h('p', { class: 'muted panel-body', 'data-testid': 'diff' }, 'The two versions are identical.') };
  }
  const sign = { add: '+', del: '−', ctx: ' ' };
  const table = h('table', { class: 'diff', 'data-testid': 'diff' },
    h('tbody', null, lines.map((l) => {
      if (l.kind === 'meta' || l.kind === 'hunk') {
        return h('tr', { class: l.kind }, h('td', { colspan: 4 }, l.text));
      }
      return h('tr', { class: l.kind, 'data-testid': l.kind === 'add' ? 'diff-add' : l.kind === 'del' ? 'diff-del' : null },
        h('td', { class: 'ln' }, l.oldNo ?? ''),
        h('td', { class: 'ln' }, l.newNo ?? ''),
        h('td', { class: 'sign', 'aria-label': l.kind === 'add' ? 'added' : l.kind === 'del' ? 'removed' : null }, sign[l.kind]),
        h('td', { class: 'txt' }, l.text));
    })));
  return { stat, table };
}
