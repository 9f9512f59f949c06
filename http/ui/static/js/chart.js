// Time-series charts drawn as plain SVG (no library, nothing fetched):
// one line per series over evenly spaced slots, gaps where a slot has no
// value, the latest values in the legend.

const NS = 'http://www.w3.org/2000/svg';
const W = 600, H = 150, PAD_L = 56, PAD_R = 8, PAD_T = 8, PAD_B = 20;

function svg(tag, attrs, ...kids) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null) el.setAttribute(k, String(v));
  for (const k of kids) if (k != null) el.append(k);
  return el;
}

/** fmtTick formats an axis time (HH:MM, or day and HH:MM for long windows). */
function fmtTick(t, long) {
  const d = new Date(t);
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return long ? d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + hm : hm;
}

/** niceMax rounds a maximum up to 1, 2 or 5 × 10^n. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

/**
 * lineChart returns a figure with an SVG chart.
 * opts: {title, start (ISO), step (seconds), series: [{name, label, values, color}], fmt (value → text), testid}
 */
export function lineChart(opts) {
  const { title, series, fmt } = opts;
  const n = Math.max(0, ...series.map((s) => s.values.length));
  const start = Date.parse(opts.start), step = opts.step * 1000;
  let max = 0;
  for (const s of series) for (const v of s.values) if (v != null && v > max) max = v;
  max = niceMax(max);
  const x = (i) => PAD_L + (n <= 1 ? 0 : (i / (n - 1)) * (W - PAD_L - PAD_R));
  const y = (v) => PAD_T + (1 - v / max) * (H - PAD_T - PAD_B);
  const grid = [0, 0.5, 1].map((f) => svg('g', null,
    svg('line', { x1: PAD_L, x2: W - PAD_R, y1: y(f * max), y2: y(f * max), class: 'chart-grid' }),
    svg('text', { x: PAD_L - 6, y: y(f * max) + 4, 'text-anchor': 'end', class: 'chart-label' }, fmt(f * max))));
  const long = n * step > 24 * 3600 * 1000;
  const axis = n ? [
    svg('text', { x: PAD_L, y: H - 4, class: 'chart-label' }, fmtTick(start, long)),
    svg('text', { x: W - PAD_R, y: H - 4, 'text-anchor': 'end', class: 'chart-label' }, fmtTick(start + (n - 1) * step, long)),
  ] : [];
  const lines = series.map((s) => {
    let d = '', pen = false;
    s.values.forEach((v, i) => {
      if (v == null) { pen = false; return; }
      d += (pen ? 'L' : 'M') + x(i).toFixed(1) + ' ' + y(v).toFixed(1);
      pen = true;
    });
    // A lone point between gaps would be invisible as a path.
    const dots = s.values.map((v, i) => (v != null && s.values[i - 1] == null && s.values[i + 1] == null)
      ? svg('circle', { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2, fill: s.color }) : null);
    return svg('g', { 'data-series': s.name }, svg('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 1.6 }), ...dots);
  });
  const latest = (s) => { for (let i = s.values.length - 1; i >= 0; i--) if (s.values[i] != null) return s.values[i]; return null; };
  const summary = series.map((s) => `${s.label} ${latest(s) == null ? 'no data' : fmt(latest(s))}`).join(', ');
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}: ${summary}` },
    ...grid, ...axis, ...lines);
  const legend = document.createElement('div');
  legend.className = 'chart-legend';
  for (const s of series) {
    const item = document.createElement('span');
    item.className = 'chart-key';
    item.dataset.series = s.name;
    const sw = document.createElement('i');
    sw.style.background = s.color;
    const v = latest(s);
    item.append(sw, `${s.label} `, Object.assign(document.createElement('b'), { textContent: v == null ? '—' : fmt(v) }));
    legend.append(item);
  }
  const fig = document.createElement('figure');
  fig.className = 'chart-box';
  if (opts.testid) fig.dataset.testid = opts.testid;
  const cap = document.createElement('figcaption');
  cap.textContent = title;
  fig.append(cap, chart, legend);
  return fig;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** fmtBytes: 1536 → "1.5 KiB". */
export function fmtBytes(v) {
  let i = 0;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(v < 10 ? 1 : 0) : String(Math.round(v))) + ' ' + UNITS[i];
}

/** fmtNum: a compact count or rate, 1234 → "1.2k". */
export function fmtNum(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (a >= 1e3) return (v / 1e3).toFixed(1) + 'k';
  if (a === 0 || a >= 10) return String(Math.round(v));
  return v.toFixed(a >= 1 ? 1 : 2);
}
