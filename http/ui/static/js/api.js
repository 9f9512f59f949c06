// REST client for /api/v1. Errors carry the server's {"error":{code,message}}.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || 'HTTP ' + status);
    this.status = status;
    this.code = code || '';
  }
}

let onUnauthorized = () => {};

/** setUnauthorizedHandler is called with every 401 (the app shows the login page). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** unauthorized reports a lost session noticed elsewhere (the event stream). */
export function unauthorized() {
  onUnauthorized(new ApiError(401, 'unauthorized', 'Your session has ended.'));
}

/** csrfToken reads the steward_csrf cookie set at login. */
export function csrfToken() {
  for (const part of document.cookie.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === 'steward_csrf') return decodeURIComponent(v.join('='));
  }
  return '';
}

/**
 * request calls the API. body is sent as JSON. State-changing methods carry
 * X-Steward-CSRF. Resolves to the decoded JSON (null for 204); rejects with
 * ApiError.
 */
export async function request(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') headers['X-Steward-CSRF'] = csrfToken();
  let res;
  try {
    res = await fetch('/api/v1' + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      signal: opts.signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'unavailable', 'Cannot reach the Steward server: ' + e.message);
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    const e = new ApiError(res.status, err.code, err.message || res.statusText);
    if (res.status === 401 && !opts.noAuthRedirect) onUnauthorized(e);
    throw e;
  }
  return data;
}

/** qs builds a query string from defined, non-empty params. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue;
    u.set(k, String(v));
  }
  const s = u.toString();
  return s ? '?' + s : '';
}

const enc = encodeURIComponent;

export const api = {
  login: (name, password) => request('POST', '/login', { name: name || undefined, password }, { noAuthRedirect: true }),
  session: () => request('GET', '/session', undefined, { noAuthRedirect: true }),
  logout: () => request('POST', '/logout', {}, { noAuthRedirect: true }),
  summary: (opts) => request('GET', '/summary', undefined, opts),
  agents: (params, opts) => request('GET', '/agents' + qs(params), undefined, opts),
  // bulkAgents acts on (or, with dry_run, counts) every agent params match.
  bulkAgents: (params, body) => request('POST', '/agents/bulk' + qs(params), body),
  agent: (id, opts) => request('GET', '/agents/' + enc(id), undefined, opts),
  deleteAgent: (id) => request('DELETE', '/agents/' + enc(id)),
  setLabels: (id, labels) => request('PUT', '/agents/' + enc(id) + '/labels', { labels }),
  restart: (id) => request('POST', '/agents/' + enc(id) + '/restart', {}),
  events: (params, opts) => request('GET', '/events' + qs(params), undefined, opts),
  agentEvents: (id, limit, opts) => request('GET', '/agents/' + enc(id) + '/events' + qs({ limit }), undefined, opts),
  desiredConfig: (id, opts) => request('GET', '/agents/' + enc(id) + '/desired-config', undefined, opts),
  configs: (opts) => request('GET', '/configs', undefined, opts),
  config: (name, version, opts) => request('GET', '/configs/' + enc(name) + qs({ version }), undefined, opts),
  deleteConfig: (name) => request('DELETE', '/configs/' + enc(name)),
  configVersions: (name, opts) => request('GET', '/configs/' + enc(name) + '/versions', undefined, opts),
  configDiff: (name, from, to, opts) => request('GET', '/configs/' + enc(name) + '/diff' + qs({ from, to }), undefined, opts),
  putConfig: (name, files, comment, force) => request('PUT', '/configs/' + enc(name) + qs({ force: force ? 'true' : '' }), { files, comment }),
  previewConfig: (name, files, comment) => request('POST', '/configs/' + enc(name) + '/preview', { files, comment }),
  assignments: (opts) => request('GET', '/assignments', undefined, opts),
  putAssignment: (a, force) => request('PUT', '/assignments/' + enc(a.name) + qs({ force: force ? 'true' : '' }), a),
  previewAssignment: (a, opts) => request('POST', '/assignments/' + enc(a.name) + '/preview' + qs({ limit: 1 }), a, opts),
  rollouts: (opts) => request('GET', '/rollouts', undefined, opts),
  startRollout: (r, force) => request('POST', '/rollouts' + qs({ force: force ? 'true' : '' }), r),
  rolloutAction: (name, action) => request('POST', '/rollouts/' + enc(name) + '/' + action, {}),
  deleteAssignment: (name) => request('DELETE', '/assignments/' + enc(name)),
};

/** list extracts an array from a response that may be wrapped ({key:[...]}) or bare. */
export function list(resp, key) {
  if (Array.isArray(resp)) return resp;
  if (resp && Array.isArray(resp[key])) return resp[key];
  return [];
}
