// Steward console entry point: the shell (top bar, navigation, live
// indicator), the client-side router and the login flow.
import { h, replace, tickTimes, toast } from './dom.js';
import { api, setUnauthorizedHandler } from './api.js';
import * as events from './events.js';
import * as overview from './pages/overview.js';
import * as agents from './pages/agents.js';
import * as agent from './pages/agent.js';
import * as configs from './pages/configs.js';
import * as assignments from './pages/assignments.js';
import * as rollouts from './pages/rollouts.js';
import * as eventsPage from './pages/events.js';
import * as packages from './pages/packages.js';
import * as tokens from './pages/tokens.js';
import * as certificates from './pages/certificates.js';
import * as connections from './pages/connections.js';
import * as audit from './pages/audit.js';
import * as usersPage from './pages/users.js';

const routes = [
  { re: /^\/$/, page: overview, nav: '/' },
  { re: /^\/agents\/?$/, page: agents, nav: '/agents' },
  { re: /^\/agents\/([^/]+)$/, page: agent, nav: '/agents', keys: ['id'] },
  { re: /^\/configs\/?$/, page: configs, nav: '/configs' },
  { re: /^\/configs\/([^/]+)$/, page: configs, nav: '/configs', keys: ['name'] },
  { re: /^\/assignments\/?$/, page: assignments, nav: '/assignments' },
  { re: /^\/rollouts\/?$/, page: rollouts, nav: '/rollouts' },
  { re: /^\/events\/?$/, page: eventsPage, nav: '/events' },
  { re: /^\/packages\/?$/, page: packages, nav: '/packages' },
  { re: /^\/admin\/?$/, redirect: '/admin/tokens' },
  { re: /^\/admin\/users\/?$/, page: usersPage, nav: '/admin' },
  { re: /^\/admin\/tokens\/?$/, page: tokens, nav: '/admin' },
  { re: /^\/admin\/certificates\/?$/, page: certificates, nav: '/admin' },
  { re: /^\/admin\/connection-settings\/?$/, page: connections, nav: '/admin' },
  { re: /^\/admin\/audit\/?$/, page: audit, nav: '/admin' },
];

const app = document.getElementById('app');
let shell = null;       // {main, nav, live}
let cleanup = null;     // the mounted page's teardown
let loggedOut = false;  // showing the login page
let authEnabled = true; // false when the server runs without authentication
let role = 'admin';     // the signed-in caller's role (the server enforces it)
let user = '';          // the signed-in caller's name
let sso = false;        // the server offers single sign-on (OpenID Connect)

/** navigate changes the route without a reload. */
export function navigate(to, { replace: rep = false } = {}) {
  if (to === location.pathname + location.search) {
    if (!rep) return route();
  }
  if (rep) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  route();
  // Move focus to the new content, as a page load would, so keyboard and
  // screen reader users start there rather than on the link they left.
  if (shell && app.contains(shell.main)) shell.main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

function buildShell() {
  const live = h('span', { class: 'live', 'data-testid': 'live', 'data-state': 'off', title: 'Live updates' },
    h('span', { class: 'dot', 'aria-hidden': 'true' }), h('span', { class: 'txt' }, 'Offline'));
  const nav = h('nav', { class: 'nav', 'aria-label': 'Main' },
    h('a', { href: '/', 'data-testid': 'nav-overview' }, 'Overview'),
    h('a', { href: '/agents', 'data-testid': 'nav-agents' }, 'Agents'),
    h('a', { href: '/configs', 'data-testid': 'nav-configs' }, 'Configurations'),
    h('a', { href: '/assignments', 'data-testid': 'nav-assignments' }, 'Assignments'),
    h('a', { href: '/rollouts', 'data-testid': 'nav-rollouts' }, 'Rollouts'),
    h('a', { href: '/packages', 'data-testid': 'nav-packages' }, 'Packages'),
    h('a', { href: '/events', 'data-testid': 'nav-events' }, 'Events'),
    h('a', { href: '/admin', 'data-testid': 'nav-admin' }, 'Admin'),
  );
  const main = h('main', { id: 'main', tabindex: '-1', 'data-testid': 'main' });
  // Narrow windows fold the navigation behind a menu button (CSS decides
  // when); following a link folds it again.
  const menu = h('button', { class: 'menu-btn', type: 'button', 'aria-label': 'Menu', 'aria-expanded': 'false', 'aria-controls': 'main-nav', 'data-testid': 'nav-menu' }, '\u2630');
  nav.id = 'main-nav';
  const header = h('header', { class: 'topbar' },
    menu,
    h('a', { class: 'brand', href: '/', 'aria-label': 'Steward home' }, h('img', { src: '/favicon.svg', alt: '' }), h('span', null, 'Steward')),
    nav,
    h('span', { class: 'spacer' }),
    live,
    authEnabled && user ? h('span', { class: 'whoami muted', 'data-testid': 'whoami', title: `Signed in as ${user} (${role})` }, user) : null,
    authEnabled ? h('button', { class: 'small', type: 'button', 'data-testid': 'logout', onclick: logout }, 'Sign out') : null,
  );
  const fold = (open) => { header.classList.toggle('open', open); menu.setAttribute('aria-expanded', String(open)); };
  menu.addEventListener('click', () => fold(!header.classList.contains('open')));
  nav.addEventListener('click', (e) => { if (e.target.closest('a')) fold(false); });
  header.addEventListener('keydown', (e) => { if (e.key === 'Escape' && header.classList.contains('open')) { fold(false); menu.focus(); } });
  replace(app, header, main);
  events.onState((s) => {
    live.dataset.state = s;
    live.querySelector('.txt').textContent =
      { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', off: 'Offline' }[s] || s;
  });
  return { main, nav, live };
}

async function logout() {
  try { await api.logout(); } catch { /* the session is gone either way */ }
  showLogin('/');
}

function unmount() {
  if (cleanup) {
    try { cleanup(); } catch (e) { console.error(e); }
    cleanup = null;
  }
}

function route() {
  const path = location.pathname;
  if (path === '/login') {
    const next = new URLSearchParams(location.search).get('next') || '/';
    showLogin(next, true);
    return;
  }
  loggedOut = false;
  if (!shell || !app.contains(shell.main)) shell = buildShell();
  events.start();
  unmount();
  let match = null, r = null;
  for (const rt of routes) {
    match = rt.re.exec(path);
    if (match) { r = rt; break; }
  }
  if (r && r.redirect) { navigate(r.redirect, { replace: true }); return; }
  for (const a of shell.nav.querySelectorAll('a')) {
    if (r && a.getAttribute('href') === r.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  replace(shell.main);
  if (!r) {
    document.title = 'Not found · Steward';
    shell.main.append(h('div', { class: 'panel panel-body', 'data-testid': 'not-found' },
      h('h1', null, 'Page not found'), h('p', { class: 'muted' }, 'There is nothing at ', h('code', null, path), '.'),
      h('a', { href: '/' }, 'Go to the overview')));
    return;
  }
  const params = {};
  (r.keys || []).forEach((k, i) => { params[k] = decodeURIComponent(match[i + 1]); });
  const query = new URLSearchParams(location.search);
  const ctx = {
    params, query, navigate, role, user,
    setTitle: (t) => { document.title = (t ? t + ' · ' : '') + 'Steward'; },
  };
  cleanup = r.page.mount(shell.main, ctx) || null;
}

/** showLogin replaces everything with the sign-in form; next is where to go after. */
function showLogin(next, fromUrl) {
  if (loggedOut && !fromUrl) return;
  loggedOut = true;
  unmount();
  events.stop();
  shell = null;
  if (location.pathname !== '/login') {
    history.replaceState(null, '', '/login' + (next && next !== '/' ? '?next=' + encodeURIComponent(next) : ''));
  }
  document.title = 'Sign in · Steward';
  const err = h('p', { class: 'error-text', role: 'alert', 'data-testid': 'login-error', hidden: true });
  const name = h('input', { type: 'text', id: 'login-name', name: 'username', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', placeholder: 'admin', 'data-testid': 'login-name' });
  const pw = h('input', { type: 'password', id: 'login-password', name: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password' });
  const btn = h('button', { class: 'primary', type: 'submit', 'data-testid': 'login-submit' }, 'Sign in');
  const form = h('form', { class: 'panel login', 'data-testid': 'login-form', 'aria-labelledby': 'login-title' },
    h('div', { class: 'brand', id: 'login-title' }, h('img', { src: '/favicon.svg', alt: '' }), 'Steward'),
    h('p', null, 'Sign in to manage your OpAMP fleet.'),
    h('div', { class: 'field' }, h('label', { for: 'login-name' }, 'User name'), name),
    h('div', { class: 'field' }, h('label', { for: 'login-password' }, 'Password'), pw),
    err, btn);
  if (sso) {
    // A full navigation: the server redirects to the OpenID provider and,
    // after the person signs in there, back to the console.
    form.append(h('p', { class: 'login-or' }, 'or'),
      h('a', { class: 'btn sso', href: '/api/v1/sso/login' + (next && next !== '/' ? '?next=' + encodeURIComponent(next) : ''), 'data-testid': 'login-sso' }, 'Sign in with SSO'));
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    btn.disabled = true;
    err.hidden = true;
    try {
      await api.login(name.value.trim(), pw.value);
      // The session names the user and the role the server gives them.
      const s = await api.session().catch(() => null);
      if (s && s.role) role = s.role;
      user = (s && s.name) || '';
      const to = next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/login') ? next : '/';
      history.replaceState(null, '', to);
      route();
    } catch (ex) {
      err.textContent = ex.status === 401 ? 'Wrong user name or password.' : ex.message;
      err.hidden = false;
      btn.disabled = false;
      pw.select();
    }
  });
  replace(app, h('div', { class: 'login-wrap' }, form));
  name.focus();
}

setUnauthorizedHandler(() => {
  showLogin(location.pathname === '/login' ? '/' : location.pathname + location.search);
});

// Same-origin links navigate in place.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const href = a.getAttribute('href');
  if (!href.startsWith('/') || href.startsWith('//') || href.startsWith('/api/')) return;
  e.preventDefault();
  navigate(href);
});
window.addEventListener('popstate', route);
window.addEventListener('unhandledrejection', (e) => {
  if (e.reason && e.reason.status === 401) return;
  if (e.reason && e.reason.name === 'AbortError') return;
  toast(String((e.reason && e.reason.message) || e.reason), 'bad');
});
setInterval(tickTimes, 10000);

// Ask for the session first so a signed-out visitor sees the sign-in form
// at once rather than the shell failing behind it.
api.session().then((s) => {
  authEnabled = !s || s.auth_enabled !== false;
  sso = !!(s && s.sso);
  if (s && s.role) role = s.role;
  user = (s && s.authenticated && s.name) || '';
  if (s && s.auth_enabled && !s.authenticated && location.pathname !== '/login') {
    showLogin(location.pathname + location.search);
  } else {
    route();
  }
}, () => route());
