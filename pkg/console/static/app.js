// crawlmesh console: reads /api/v1/ every 2 seconds while the tab is
// visible; actions send the token the person entered, kept in this tab's
// sessionStorage only, as "Authorization: Bearer".
'use strict';

const API = '/api/v1/';
const POLL_MS = 2000;
const TOKEN_KEY = 'crawlmesh-api-token';
const $ = (sel) => document.querySelector(sel);

const state = {
  actions: false, reason: '', view: 'nodes', crawl: '',
  itemsAfter: 0, itemsStack: [], itemsNext: 0,
  logsAfter: 0, logsCrawl: '',
};

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const k of kids) e.append(k);
  return e;
}

function say(text, isError) {
  const m = $('#msg');
  m.textContent = text;
  m.className = isError ? 'error' : 'ok';
  delete m.dataset.read;
}

async function get(path) {
  const r = await fetch(API + path, { cache: 'no-store' });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.status + ' ' + r.statusText);
  return body;
}

// act sends an action with the token; the API's refusal is shown as is.
async function act(method, path, body, contentType) {
  const headers = {};
  if (token()) headers['Authorization'] = 'Bearer ' + token();
  if (body !== undefined) headers['Content-Type'] = contentType || 'application/json';
  const r = await fetch(API + path, {
    method, headers, cache: 'no-store', credentials: 'omit',
    body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
  });
  const out = await r.json().catch(() => ({}));
  if (!r.ok) {
    const err = new Error((r.status === 401 ? 'Refused (401): ' : r.status === 403 ? 'Refused (403): ' : 'Failed (' + r.status + '): ') + (out.error || r.statusText));
    err.body = out;
    err.status = r.status;
    throw err;
  }
  return out;
}

// ---- auth

function showAuth() {
  const st = $('#auth-status');
  const input = $('#token');
  if (!state.actions) {
    st.textContent = 'Actions disabled: ' + state.reason;
    input.disabled = true;
    $('#token-save').disabled = true;
  } else if (token()) {
    st.textContent = 'Token entered: actions are sent with it (kept for this tab only).';
  } else {
    st.textContent = 'Reading only: enter the API token to start, cancel and apply.';
  }
  // data-off marks a button whose action does not apply now (cancel of a
  // finished crawl, re-queue with no dead letters), token or not.
  for (const b of document.querySelectorAll('.action')) {
    b.disabled = !state.actions || b.dataset.off === '1';
    if (!state.actions) b.title = state.reason; else b.removeAttribute('title');
  }
}

async function loadInfo() {
  try {
    const info = await get('info');
    state.actions = !!info.actions;
    state.reason = info.reason || '';
  } catch (e) {
    state.actions = false;
    state.reason = 'the API did not answer: ' + e.message;
  }
  showAuth();
}

// ---- formatting

function secs(s) {
  if (s === null || s === undefined || !isFinite(s)) return '—';
  if (Math.abs(s) < 1) return s.toFixed(2) + ' s';
  if (Math.abs(s) < 120) return s.toFixed(1) + ' s';
  const m = Math.floor(s / 60);
  return m < 120 ? m + ' min ' + Math.round(s % 60) + ' s' : Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
}

function done(c) { return c.pages_ok + c.pages_failed + c.dead_letters + c.dropped; }

function eta(c) {
  if (c.state !== 'running') return c.state === 'completed' ? 'done' : '—';
  if (!c.pages_per_second) return 'unknown';
  return secs(c.queued / c.pages_per_second);
}

function progress(c) {
  if (c.state === 'cancelled') {
    // A cancel purges the queue: how much was left is not known, so no
    // percentage (it read 100 % of the pages still counted).
    const fetched = c.pages_ok + c.pages_failed + c.dead_letters;
    return el('span', { class: 'progress', text: fetched + ' pages fetched before the cancel' });
  }
  const total = done(c) + c.queued, d = done(c);
  const pct = total ? Math.floor(100 * d / total) : (c.state === 'completed' ? 100 : 0);
  const p = el('progress', { max: 100, value: pct });
  p.setAttribute('aria-label', 'progress of ' + c.id);
  return el('span', { class: 'progress' }, p, el('span', { text: ' ' + pct + ' % (' + d + ' of ' + total + ' known pages)' }));
}

function pagesText(c) {
  return c.pages_ok + ' ok, ' + c.pages_failed + ' failed, ' + c.dead_letters + ' dead, ' + c.queued + ' queued' +
    (c.dropped ? ', ' + c.dropped + ' dropped' : '');
}

function stateText(s) { return el('span', { class: 'state state-' + s, text: s }); }

// fill replaces a table's rows; a control that had the keyboard focus in
// a row keeps it in the new row of the same id, so live updates never
// throw a keyboard user back to the top of the page.
function fill(tbody, rows) {
  const a = document.activeElement;
  let key = null, label = '';
  if (a && a !== tbody && tbody.contains(a)) {
    const tr = a.closest('tr');
    key = tr && (tr.dataset.id || tr.dataset.seq);
    label = a.getAttribute('aria-label') || a.textContent;
  }
  tbody.replaceChildren(...rows);
  if (key === null) return;
  for (const tr of tbody.rows) {
    if ((tr.dataset.id || tr.dataset.seq) !== key) continue;
    for (const c of tr.querySelectorAll('button, a')) {
      if ((c.getAttribute('aria-label') || c.textContent) === label) { c.focus(); return; }
    }
  }
}

// ---- views

async function nodes() {
  const list = await get('nodes');
  list.sort((a, b) => (a.role + a.id).localeCompare(b.role + b.id));
  const on = list.filter((n) => n.online).length;
  $('#nodes-summary').textContent = on + ' of ' + list.length + ' nodes online.';
  const rows = [];
  for (const n of list) {
    const hb = n.heartbeat || {};
    const agent = n.role === 'agent';
    const kids = hb.children || [];
    rows.push(el('tr', { 'data-id': n.id },
      el('th', { scope: 'row', class: 'id', text: n.id }),
      el('td', { class: 'role', text: n.role }),
      el('td', { class: 'online' }, stateText(n.online ? 'online' : 'offline')),
      // An offline node leads and runs nothing; its last heartbeat is not now.
      el('td', { text: !n.online ? '—' : n.leader ? 'leader' : (n.role === 'master' ? 'standby' : '—') }),
      el('td', { text: (n.online && n.state) || '—' }),
      el('td', { text: !n.online ? '—' : agent ? 'runs ' + kids.length + ' worker process(es)' : n.active_tasks + ' of ' + n.capacity }),
      el('td', { text: secs(n.heartbeat_age_seconds) }),
      el('td', { text: secs(n.clock_skew_seconds) }),
      el('td', { text: hb.hostname || '' }),
      el('td', { class: 'agent id', text: hb.agent ? 'agent ' + hb.agent : '—' }),
      el('td', { class: 'acts' }, ...workerActions(n)),
    ));
    if (agent && n.online) rows.push(childrenRow(n.id, kids));
  }
  fill($('#nodes-table tbody'), rows);
  agentsForScale(list.filter((n) => n.role === 'agent' && n.online).map((n) => n.id));
  choices($('#conc-node'), list.filter((n) => n.role === 'worker' && n.online).map((n) => n.id), 'no worker online', $('#conc-submit'));
}

// workerActions are the buttons of an online worker's row: pause or
// resume, and drain (asked first: the worker exits).
function workerActions(n) {
  if (n.role !== 'worker' || !n.online) return [];
  const out = [];
  const button = (cmd, text) => {
    const b = el('button', { type: 'button', class: 'action', 'data-cmd': cmd, text });
    b.setAttribute('aria-label', text + ' ' + n.id);
    b.addEventListener('click', () => nodeCommand(n.id, cmd));
    out.push(b);
  };
  if (n.state === 'running') button('pause', 'Pause');
  if (n.state === 'paused') button('resume', 'Resume');
  if (n.state === 'running' || n.state === 'paused') button('drain', 'Drain');
  return out;
}

const DONE = { pause: 'paused: it takes no new tasks', resume: 'resumed', drain: 'draining: it finishes its tasks and exits' };

async function nodeCommand(id, cmd) {
  if (cmd === 'drain' && !confirm('Drain worker ' + id + '? It finishes its tasks and exits.')) return;
  try {
    await act('POST', 'nodes/' + encodeURIComponent(id) + '/' + cmd);
    say('Worker ' + id + ' ' + DONE[cmd] + '.');
    refresh();
  } catch (e) { say(e.message, true); }
}

// choices fills a select with ids, rebuilt only when they change (an open
// choice is kept), and turns its form's button off when there are none.
function choices(sel, ids, none, submit) {
  const cur = sel.value;
  const want = ids.length ? ids.join(' ') : '(none)';
  if (sel.dataset.ids !== want) {
    sel.dataset.ids = want;
    sel.replaceChildren(...(ids.length ? ids.map((id) => el('option', { value: id, text: id })) : [el('option', { value: '', text: none })]));
    if (ids.includes(cur)) sel.value = cur;
  }
  submit.dataset.off = ids.length ? '0' : '1';
  showAuth();
}

// childrenRow lists an agent's worker processes under its row, with what
// only the agent knows: restarts and how each last exited.
function childrenRow(agent, kids) {
  const cap = el('caption', { text: 'Worker processes of agent ' + agent });
  const head = el('thead', {}, el('tr', {}, ...['Process', 'PID', 'State', 'Restarts', 'Last exit', 'HTTP'].map((h) => el('th', { scope: 'col', text: h }))));
  const body = el('tbody', {}, ...kids.map((c) => el('tr', { 'data-child': c.id },
    el('th', { scope: 'row', class: 'id', text: c.id }),
    el('td', { text: c.pid ? String(c.pid) : '—' }),
    el('td', { class: 'child-state' }, stateText(c.state)),
    el('td', { class: 'restarts', text: String(c.restarts) }),
    el('td', { class: 'last-exit', text: c.last_exit || 'none' }),
    el('td', { class: 'id', text: c.http || '—' }))));
  const inner = kids.length ? el('table', { class: 'children' }, cap, head, body) : el('p', { text: 'Agent ' + agent + ' runs no worker process (scaled to 0).' });
  const td = el('td', {}, inner);
  td.colSpan = 11;
  return el('tr', { 'data-id': agent + ' children', 'data-agent': agent, class: 'children-row' }, td);
}

function agentsForScale(ids) { choices($('#scale-agent'), ids, 'no host agent online', $('#scale-submit')); }

// numberCommand sends a node command that takes a number (scale,
// set-concurrency) from a form: its node select, number input and status.
async function numberCommand(sel, input, status, cmd, none, what, done) {
  const id = $(sel).value;
  const raw = $(input).value.trim();
  const st = $(status);
  st.textContent = '';
  if (!id) { say(none, true); return; }
  if (!/^-?\d+$/.test(raw)) { st.textContent = what + ': give a whole number.'; say(st.textContent, true); $(input).focus(); return; }
  try {
    const r = await act('POST', 'nodes/' + encodeURIComponent(id) + '/' + cmd, { n: +raw });
    say(done(id, r, raw));
    refresh();
  } catch (e) { st.textContent = e.message; say(e.message, true); }
}

const scaleAgent = () => numberCommand('#scale-agent', '#scale-n', '#scale-status', 'scale', 'No host agent is online to scale.', 'Workers',
  (id, r, raw) => 'Agent ' + id + ' now runs ' + (r.workers ?? raw) + ' worker process(es); those it stops are drained first.');
const setConcurrency = () => numberCommand('#conc-node', '#conc-n', '#conc-status', 'set-concurrency', 'No worker is online.', 'Tasks in flight',
  (id, r, raw) => 'Worker ' + id + ' now runs up to ' + raw + ' tasks at once (kept in the cluster configuration).');

// ---- cluster config

const ROLE_ORDER = { master: 0, worker: 1 };
let cfgKeys = [];

function shown(v) { return v === '' ? '(none)' : v; }

function keyHelp() {
  const k = cfgKeys.find((x) => x.name === $('#cfg-key').value);
  $('#cfg-key-help').textContent = k ? k.doc + '. Type ' + k.type + ', range ' + k.range + ', default ' + shown(k.default) + '; applied by ' + k.roles.join(' and ') + ' nodes.' : '';
}

function levelFields() {
  const lvl = $('#cfg-level').value;
  $('#cfg-role-field').hidden = lvl !== 'role';
  $('#cfg-node-field').hidden = lvl !== 'node';
}

const CFG_FIELDS = { level: '#cfg-level', role: '#cfg-role', node: '#cfg-node', value: '#cfg-value' };

function clearCfgErrors() {
  for (const [f, sel] of Object.entries(CFG_FIELDS)) {
    const p = $('#cfg-' + f + '-error');
    p.hidden = true; p.textContent = '';
    $(sel).removeAttribute('aria-invalid');
  }
}

// cfgError shows an error next to its field and moves the keyboard there.
function cfgError(field, text) {
  const p = $('#cfg-' + field + '-error');
  p.textContent = text;
  p.hidden = false;
  $(CFG_FIELDS[field]).setAttribute('aria-invalid', 'true');
  $(CFG_FIELDS[field]).focus();
  say('Nothing changed: ' + text, true);
}

// fieldOf picks the field an API refusal is about.
function fieldOf(msg, status) {
  if (status === 404) return 'level';
  if (/^--node|^node:/.test(msg)) return 'node';
  if (/not to role|^--role/.test(msg)) return 'role';
  return 'value';
}

async function configWrite(remove) {
  clearCfgErrors();
  const key = $('#cfg-key').value;
  const lvl = $('#cfg-level').value;
  let path, where;
  if (lvl === 'cluster') { path = 'config/cluster/'; where = 'the cluster'; }
  else if (lvl === 'role') { const r = $('#cfg-role').value; path = 'config/role/' + encodeURIComponent(r) + '/'; where = 'role ' + r; }
  else {
    const n = $('#cfg-node').value.trim();
    if (!n) { cfgError('node', 'Give the id of the node.'); return; }
    path = 'config/node/' + encodeURIComponent(n) + '/'; where = 'node ' + n;
  }
  path += encodeURIComponent(key);
  try {
    if (remove) {
      await act('DELETE', path);
      say(key + ' removed at ' + where + ': the next level applies again.');
    } else {
      const e = await act('PUT', path, { value: $('#cfg-value').value });
      say(key + ' = ' + shown(e.value) + ' stored for ' + where + ' (revision ' + e.revision + '); nodes apply it within a second.');
    }
    refresh();
  } catch (e) {
    if ((e.status === 400 || e.status === 404) && e.body && e.body.error) cfgError(fieldOf(e.body.error, e.status), e.body.error);
    else say(e.message, true);
  }
}

async function removeStored(en) {
  const where = en.scope.level === 'cluster' ? 'the cluster' : en.scope.level + ' ' + en.scope.target;
  const path = 'config/' + en.scope.level + '/' + (en.scope.target ? encodeURIComponent(en.scope.target) + '/' : '') + encodeURIComponent(en.key);
  try { await act('DELETE', path); say(en.key + ' removed at ' + where + ': the next level applies again.'); refresh(); } catch (e) { say(e.message, true); }
}

async function config() {
  const c = await get('config');
  cfgKeys = c.keys;
  const sel = $('#cfg-key');
  if (sel.options.length !== c.keys.length) {
    const cur = sel.value;
    sel.replaceChildren(...c.keys.map((k) => el('option', { value: k.name, text: k.name })));
    if (cur) sel.value = cur;
    keyHelp();
  }
  // The nodes that apply keys (an agent applies none), masters first.
  const ns = c.nodes.filter((n) => Object.keys(n.values || {}).length)
    .sort((a, b) => ((ROLE_ORDER[a.role] ?? 9) - (ROLE_ORDER[b.role] ?? 9)) || a.node.localeCompare(b.node));
  $('#cfg-nodes').replaceChildren(...c.nodes.map((n) => el('option', { value: n.node })));
  fill($('#config-nodes tbody'), ns.map((n) => el('tr', { 'data-id': n.node },
    el('th', { scope: 'row', class: 'id', text: n.node }),
    el('td', { text: n.role }),
    el('td', { class: 'online' }, stateText(n.online ? 'online' : 'offline')),
    el('td', { class: 'rev', text: n.online ? String(n.rev) : 'unknown (offline)' }),
    el('td', { class: 'errors' + ((n.errors || []).length ? ' error' : ''), text: (n.errors || []).length ? n.errors.join('; ') : 'none' }))));
  $('#config-effective thead').replaceChildren(el('tr', {}, el('th', { scope: 'col', text: 'Key' }),
    ...ns.map((n) => el('th', { scope: 'col', class: 'id', text: n.node + (n.online ? ' (rev ' + n.rev + ')' : ' (offline)') }))));
  $('#config-effective tbody').replaceChildren(...c.keys.map((k) => el('tr', { 'data-id': k.name },
    el('th', { scope: 'row', class: 'id', text: k.name }),
    ...ns.map((n) => {
      const v = n.values[k.name];
      if (!v) return el('td', { 'data-node': n.node, 'data-key': k.name, class: 'na', text: 'does not apply' });
      return el('td', { 'data-node': n.node, 'data-key': k.name },
        el('span', { class: 'val', text: shown(v.value) }), ' ', el('span', { class: 'src src-' + v.source.replace(/\W/g, ''), text: '(' + v.source + ')' }));
    }))));
  $('#config-stored-summary').textContent = c.entries.length ? c.entries.length + ' value(s) stored.' : 'Nothing stored: every node uses its flags or the defaults.';
  const order = { cluster: 0, role: 1, node: 2 };
  const es = [...c.entries].sort((a, b) => (order[a.scope.level] - order[b.scope.level]) || (a.scope.target || '').localeCompare(b.scope.target || '') || a.key.localeCompare(b.key));
  fill($('#config-stored tbody'), es.map((en) => {
    const where = en.scope.level === 'cluster' ? 'cluster' : en.scope.level + ' ' + en.scope.target;
    const rm = el('button', { type: 'button', class: 'action', text: 'Remove' });
    rm.setAttribute('aria-label', 'Remove ' + en.key + ' at ' + where);
    rm.addEventListener('click', () => removeStored(en));
    return el('tr', { 'data-id': where + ' ' + en.key },
      el('td', { class: 'scope', text: where }),
      el('th', { scope: 'row', class: 'id', text: en.key }),
      el('td', { class: 'val', text: shown(en.value) }),
      el('td', { text: String(en.revision) }),
      el('td', { text: en.updated || '' }),
      el('td', { class: en.error ? 'error' : '', text: en.error ? 'not applied: ' + en.error : 'valid' }),
      el('td', {}, rm));
  }));
  fill($('#config-keys tbody'), c.keys.map((k) => {
    const edit = el('button', { type: 'button', text: 'Change' });
    edit.setAttribute('aria-label', 'Change ' + k.name);
    edit.addEventListener('click', () => { sel.value = k.name; keyHelp(); clearCfgErrors(); $('#cfg-value').focus(); });
    const cv = c.cluster[k.name] || { value: k.default, source: 'default' };
    return el('tr', { 'data-id': k.name },
      el('th', { scope: 'row', class: 'id', text: k.name }),
      el('td', { text: k.type }),
      el('td', { class: 'range', text: k.range }),
      el('td', { class: 'default', text: shown(k.default) }),
      el('td', { text: k.roles.join(', ') }),
      el('td', { class: 'cluster' }, el('span', { class: 'val', text: shown(cv.value) }), ' ', el('span', { class: 'src', text: '(' + cv.source + ')' })),
      el('td', { class: 'doc', text: k.doc }),
      el('td', {}, edit));
  }));
  showAuth();
}

async function spiders() {
  const list = await get('spiders');
  fill($('#spiders-table tbody'), list.map((s) => {
    const edit = el('button', { type: 'button', text: 'Edit' });
    edit.setAttribute('aria-label', 'Edit spider ' + s.name);
    edit.addEventListener('click', () => {
      $('#spec-yaml').value = JSON.stringify(s.spec, null, 2);
      $('#spec-yaml').focus();
    });
    const del = el('button', { type: 'button', class: 'action', text: 'Delete' });
    del.setAttribute('aria-label', 'Delete spider ' + s.name);
    del.addEventListener('click', async () => {
      if (!confirm('Delete spider ' + s.name + '?')) return;
      try { await act('DELETE', 'spiders/' + encodeURIComponent(s.name)); say('Spider ' + s.name + ' deleted.'); refresh(); } catch (e) { say(e.message, true); }
    });
    return el('tr', { 'data-id': s.name },
      el('th', { scope: 'row', class: 'id', text: s.name }),
      el('td', { text: (s.spec.start_urls || []).join(' ') }),
      el('td', { text: s.spec.max_depth || 'unlimited' }),
      el('td', { text: s.spec.max_pages || 'unlimited' }),
      el('td', { text: s.spec.schedule || '—' }),
      el('td', { text: String(s.revision) }),
      el('td', {}, edit, ' ', del));
  }));
  const sel = $('#start-spider');
  const cur = sel.value;
  sel.replaceChildren(...list.map((s) => el('option', { value: s.name, text: s.name })));
  if (cur) sel.value = cur;
  showAuth();
}

// lineOf finds the line of a field path (items[0].fields) in the YAML the
// person typed: the top key's line, then the next key's line under it.
function lineOf(text, path) {
  const parts = path.replace(/\[\d+\]/g, '').split('.');
  const lines = text.split('\n');
  let from = 0, found = -1;
  for (const p of parts) {
    const re = new RegExp('^\\s*(-\\s+)?"?' + p.replace(/[^\w-]/g, '') + '"?\\s*:');
    let hit = -1;
    for (let i = from; i < lines.length; i++) if (re.test(lines[i])) { hit = i; break; }
    if (hit < 0) break;
    found = hit; from = hit + 1;
  }
  return found < 0 ? 0 : found + 1;
}

function showSpecErrors(errors) {
  const text = $('#spec-yaml').value;
  const ul = $('#spec-errors');
  ul.replaceChildren(...errors.map((msg) => {
    const m = /^([a-z_]+(?:\[\d+\])?(?:\.[A-Za-z0-9_-]+(?:\[\d+\])?)*)/.exec(msg);
    const field = m ? m[1] : '(spec)';
    let line = 0;
    // The server names the line: YAML's "path: line N: ..." or "... (line N)".
    const lm = /^[^ ]*:? ?line (\d+): |\(line (\d+)\)$/.exec(msg);
    if (lm) line = +(lm[1] || lm[2]); else if (m) line = lineOf(text, field);
    const rest = (m ? msg.slice(field.length).replace(/^:\s*/, ' ') : msg).replace(/ \(line \d+\)$/, '');
    return el('li', { 'data-field': field },
      el('strong', { class: 'field', text: field }),
      el('span', { class: 'line', text: line ? ' (line ' + line + ')' : '' }),
      el('span', { text: ' — ' + rest.trim() }));
  }));
  $('#spec-errors-box').hidden = errors.length === 0;
  $('#spec-yaml').setAttribute('aria-invalid', errors.length ? 'true' : 'false');
}

async function crawls() {
  const list = await get('crawls');
  fill($('#crawls-table tbody'), list.map((c) => {
    const cancel = el('button', { type: 'button', class: 'action', text: 'Cancel' });
    cancel.dataset.off = c.state !== 'running' ? '1' : '0';
    cancel.disabled = c.state !== 'running' || !state.actions;
    cancel.addEventListener('click', () => cancelCrawl(c.id));
    const link = el('a', { href: '#crawl/' + encodeURIComponent(c.id), class: 'id', text: c.id });
    const stCell = el('td', { class: 'state' }, stateText(c.state));
    if (c.error) stCell.append(el('div', { class: 'error', text: c.error }));
    return el('tr', { 'data-id': c.id },
      el('th', { scope: 'row' }, link),
      el('td', { text: c.spider }),
      stCell,
      el('td', {}, progress(c)),
      el('td', { class: 'pages', text: pagesText(c) }),
      el('td', { class: 'items', text: String(c.items) }),
      el('td', { text: c.pages_per_second.toFixed(1) + ' pages/s' }),
      el('td', { class: 'eta', text: eta(c) }),
      el('td', {}, cancel));
  }));
}

async function cancelCrawl(id) {
  if (!confirm('Cancel crawl ' + id + '? Its queued pages are dropped.')) return;
  try { await act('POST', 'crawls/' + encodeURIComponent(id) + '/cancel'); say('Crawl ' + id + ' cancelled.'); refresh(); } catch (e) { say(e.message, true); }
}

async function crawl() {
  const id = state.crawl;
  const c = await get('crawls/' + encodeURIComponent(id));
  $('#crawl-id').textContent = id;
  const dl = $('#crawl-status');
  const pairs = [['Spider', c.spider], ['State', c.state], ['Pages', c.pages_ok + ' ok, ' + c.pages_failed + ' failed, ' + c.dead_letters + ' dead letters, ' + c.queued + ' queued' + (c.dropped ? ', ' + c.dropped + ' dropped' : '')],
    ['Items', String(c.items)], ['Rate', c.pages_per_second.toFixed(1) + ' pages/s'], ['ETA', eta(c)], ['Elapsed', secs(c.elapsed_seconds)], ['Started', c.created_at]];
  dl.replaceChildren(...pairs.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { 'data-key': k.toLowerCase(), text: v })]));
  const err = $('#crawl-error');
  err.hidden = !c.error;
  err.textContent = c.error ? 'Error: ' + c.error : '';
  $('#crawl-cancel').dataset.off = c.state !== 'running' ? '1' : '0';
  $('#crawl-cancel').disabled = c.state !== 'running' || !state.actions;
  const base = API + 'crawls/' + encodeURIComponent(id) + '/export?format=';
  $('#dl-jsonl').href = base + 'jsonl';
  $('#dl-csv').href = base + 'csv';
  await Promise.all([items(), logs(), dead(c.dead_letters)]);
}

async function items() {
  const id = state.crawl;
  const page = await get('crawls/' + encodeURIComponent(id) + '/items?limit=20&after=' + state.itemsAfter);
  const its = page.entries;
  const fields = [...new Set(its.flatMap((i) => Object.keys(i.data || {})))].sort();
  $('#items-table thead').replaceChildren(el('tr', {}, el('th', { scope: 'col', text: 'URL' }), ...fields.map((f) => el('th', { scope: 'col', text: f })), el('th', { scope: 'col', text: 'Depth' })));
  fill($('#items-table tbody'), its.map((i) => el('tr', {},
    el('td', { class: 'url', text: i.url }),
    ...fields.map((f) => el('td', { text: typeof i.data[f] === 'string' ? i.data[f] : JSON.stringify(i.data[f] ?? '') })),
    el('td', { text: String(i.depth) }))));
  state.itemsNext = page.next;
  $('#items-next').disabled = its.length < 20;
  $('#items-first').disabled = state.itemsAfter === 0;
  $('#items-pos').textContent = its.length ? 'Page ' + (state.itemsStack.length + 1) + ', ' + its.length + ' items shown.' : 'No items yet.';
}

async function logs() {
  const id = state.crawl;
  if (state.logsCrawl !== id) { state.logsCrawl = id; state.logsAfter = 0; $('#logs-list').replaceChildren(); }
  if (!$('#logs-follow').checked && state.logsAfter > 0) return;
  const page = await get('crawls/' + encodeURIComponent(id) + '/logs?limit=500&after=' + state.logsAfter);
  state.logsAfter = page.next;
  const ol = $('#logs-list');
  for (const e of page.entries) {
    let line = e.ts + ' ' + e.node + ' ' + e.outcome + ' attempt ' + e.attempt;
    if (e.status) line += ' status ' + e.status;
    line += ' ' + e.url;
    if (e.items) line += ' (' + e.items + ' items)';
    if (e.error) line += ' (' + e.error + ')';
    ol.append(el('li', { class: 'log-' + e.outcome, text: line }));
  }
  while (ol.children.length > 2000) ol.firstChild.remove();
  if (page.entries.length && $('#logs-follow').checked) ol.scrollTop = ol.scrollHeight;
}

// The dead letters are read again only when their count changes (or 30 s
// passed), and the first DEAD_SHOWN of them: a crawl with thousands read them all at every
// poll, a megabyte and seconds of the master's time (found by review).
const DEAD_SHOWN = 500;
let deadRead = '';
async function dead(count) {
  const id = state.crawl;
  const key = id + '/' + count + '/' + Math.floor(Date.now() / 30000); // and every 30 s
  if (key === deadRead) { showAuth(); return; }
  const list = await get('crawls/' + encodeURIComponent(id) + '/deadletters?limit=' + DEAD_SHOWN);
  deadRead = key;
  $('#dead-summary').textContent = !list.length ? 'No dead letters.'
    : count > list.length ? 'The first ' + list.length + ' of ' + count + ' dead letters (all of them: crawlmesh crawl deadletters ' + id + ').'
      : list.length + ' dead letter(s).';
  $('#dead-requeue-all').dataset.off = list.length === 0 ? '1' : '0';
  fill($('#dead-table tbody'), list.map((d) => {
    const rq = el('button', { type: 'button', class: 'action', text: 'Re-queue' });
    rq.setAttribute('aria-label', 'Re-queue ' + d.url);
    rq.addEventListener('click', () => requeue(id, d.seq, d.url));
    return el('tr', { 'data-seq': String(d.seq) },
      el('td', { text: String(d.seq) }), el('td', { class: 'url', text: d.url }), el('td', { text: String(d.attempts) }),
      el('td', { text: d.node }), el('td', { text: d.time }), el('td', { class: 'reason', text: d.reason }), el('td', {}, rq));
  }));
  showAuth();
}

// requeue puts one dead letter (seq) or all of them (seq 0) back on the
// work queue; the API says how many and whether the crawl runs again.
async function requeue(id, seq, url) {
  const path = 'crawls/' + encodeURIComponent(id) + '/deadletters/' + (seq ? seq + '/' : '') + 'requeue';
  try {
    const r = await act('POST', path);
    deadRead = '';
    say((seq ? url + ' re-queued' : r.requeued + ' dead letter(s) re-queued') + ' in crawl ' + id +
      (r.reopened ? '; the crawl had ended and runs again.' : '.') +
      (r.skipped ? ' ' + r.skipped + ' undecodable letter(s) stay to be read.' : ''));
    refresh();
  } catch (e) { say(e.message, true); }
}

async function schedules() {
  const list = await get('schedules');
  $('#schedules-summary').textContent = list.length ? list.length + ' spider(s) with a schedule.' : 'No spider has a schedule.';
  fill($('#schedules-table tbody'), list.map((s) => {
    const edit = el('button', { type: 'button', text: 'Edit spec' });
    edit.setAttribute('aria-label', 'Edit the spec of ' + s.spider);
    edit.addEventListener('click', () => editSpider(s.spider));
    const last = s.last_crawl ? el('a', { href: '#crawl/' + encodeURIComponent(s.last_crawl), class: 'id', text: s.last_crawl }) : 'none yet';
    const next = s.error ? el('span', { class: 'error', text: 'ignored: ' + s.error }) : (s.next_run || '—');
    return el('tr', { 'data-id': s.spider },
      el('th', { scope: 'row', class: 'id', text: s.spider }),
      el('td', { text: s.schedule + ' (' + s.time_zone + ')' }),
      el('td', { class: 'next' }, next),
      el('td', { text: s.last_tick || 'none yet' }),
      el('td', {}, last),
      el('td', { text: s.applied_at }),
      el('td', {}, edit));
  }));
}

// editSpider opens a stored spider's spec in the editor of the spiders page.
async function editSpider(name) {
  try {
    const s = await get('spiders/' + encodeURIComponent(name));
    location.hash = '#spiders';
    $('#spec-yaml').value = JSON.stringify(s.spec, null, 2);
    $('#spec-yaml').focus();
  } catch (e) { say(e.message, true); }
}

async function throttle() {
  const list = await get('throttle');
  fill($('#throttle-table tbody'), list.map((o) => {
    const rm = el('button', { type: 'button', class: 'action', text: 'Remove' });
    rm.setAttribute('aria-label', 'Remove the override for ' + o.host);
    rm.addEventListener('click', async () => {
      try { await act('DELETE', 'throttle/' + encodeURIComponent(o.host)); say('Override for ' + o.host + ' removed.'); refresh(); } catch (e) { say(e.message, true); }
    });
    return el('tr', { 'data-id': o.host }, el('th', { scope: 'row', text: o.host }), el('td', { text: o.delay || '—' }),
      el('td', { text: o.parallelism ? String(o.parallelism) : '—' }), el('td', { text: o.updated_at || '' }), el('td', {}, rm));
  }));
  showAuth();
}

// ---- sinks

const SINK_FIELDS = ['name', 'type', 'url', 'table', 'spiders'];

// sinkState says a sink's state in words, as a person reads it.
function sinkState(r) {
  const st = r.status || {};
  switch (r.state) {
    case 'ok': return ['delivering', st.delivered ? 'delivering: every batch accepted' : 'ready: no item delivered yet'];
    case 'failing': return ['failing', st.permanent ? 'failing: needs a fix, retried slowly' : 'failing: retried with back-off'];
    case 'starting': return ['starting', 'starting: the leading master is opening it'];
    case 'waiting': return ['waiting', 'waiting for the leading master to start it'];
  }
  return [r.state, r.state];
}

function urlHelp() {
  $('#sink-url-help').textContent = $('#sink-type').value === 'postgres'
    ? 'e.g. postgres://app:${env:PGPASS}@db:5432/items — the table is created if missing.'
    : 'An http or https URL, a token in it only as ${env:NAME} (…/hook?token=${env:HOOK_TOKEN}); it gets each batch as a POSTed JSON array.';
  $('#sink-table-field').hidden = $('#sink-type').value !== 'postgres';
}

function clearSinkErrors() {
  for (const f of SINK_FIELDS) {
    const p = $('#sink-' + f + '-error');
    p.hidden = true; p.textContent = '';
    $('#sink-' + f).removeAttribute('aria-invalid');
  }
}

function sinkError(field, text) {
  const p = $('#sink-' + field + '-error');
  p.textContent = text;
  p.hidden = false;
  $('#sink-' + field).setAttribute('aria-invalid', 'true');
  $('#sink-' + field).focus();
  say('Sink not added: ' + text, true);
}

// sinkFieldOf picks the form field an API refusal is about.
function sinkFieldOf(msg, status) {
  if (status === 409 || /: name "/.test(msg)) return 'name';
  if (/--spider/.test(msg)) return 'spiders';
  if (/--table/.test(msg) && !/--table is a/.test(msg)) return 'table';
  return 'url';
}

async function sinkAdd() {
  clearSinkErrors();
  const name = $('#sink-name').value.trim();
  const type = $('#sink-type').value;
  const url = $('#sink-url').value.trim();
  if (!name) { sinkError('name', 'Give the sink a name.'); return; }
  if (!url) { sinkError('url', 'Give the ' + type + ' URL.'); return; }
  const body = { [type]: url };
  const table = $('#sink-table').value.trim();
  if (type === 'postgres' && table) body.table = table;
  const spiders = $('#sink-spiders').value.split(/[\s,]+/).filter((x) => x);
  if (spiders.length) body.spiders = spiders;
  try {
    const r = await act('PUT', 'sinks/' + encodeURIComponent(name), body);
    say('Sink ' + r.name + ' added (' + r.type + ', ' + r.target + '): the leading master delivers the items of ' +
      (spiders.length ? 'spider(s) ' + spiders.join(', ') : 'every spider') + ', from the first item of each crawl still running.');
    $('#sink-name').value = ''; $('#sink-url').value = ''; $('#sink-table').value = ''; $('#sink-spiders').value = '';
    refresh();
  } catch (e) {
    if ((e.status === 400 || e.status === 409) && e.body && e.body.error) sinkError(sinkFieldOf(e.body.error, e.status), e.body.error);
    else say(e.message, true);
  }
}

async function sinkRemove(name) {
  try {
    await act('DELETE', 'sinks/' + encodeURIComponent(name));
    say('Sink ' + name + ' removed; the leading master stops delivering it and drops its consumer.');
    refresh();
  } catch (e) { say(e.message, true); }
}

async function sinks() {
  const list = await get('sinks');
  const failing = list.filter((r) => r.state === 'failing').length;
  $('#sinks-summary').textContent = list.length
    ? list.length + ' sink(s)' + (failing ? ', ' + failing + ' failing.' : ', none failing.')
    : 'No sink: items stay in the results until exported.';
  fill($('#sinks-table tbody'), list.map((r) => {
    const st = r.status || {};
    const [word, words] = sinkState(r);
    const rm = el('button', { type: 'button', class: 'action', text: 'Remove' });
    rm.setAttribute('aria-label', 'Remove sink ' + r.name);
    rm.addEventListener('click', () => sinkRemove(r.name));
    let lastErr = 'none', errClass = 'last-error';
    if (r.error) { lastErr = r.error; errClass += ' error'; }
    else if (st.last_error) { lastErr = 'recovered from: ' + st.last_error; errClass += ' na'; }
    return el('tr', { 'data-id': r.name },
      el('th', { scope: 'row', class: 'id', text: r.name }),
      el('td', { class: 'type', text: r.type }),
      el('td', { class: 'target url', text: r.target }),
      el('td', { class: 'spiders', text: (r.spiders || []).length ? r.spiders.join(', ') : 'every spider' }),
      el('td', { class: 'state' }, el('span', { class: 'state state-' + word, text: words })),
      el('td', { class: 'delivered', text: String(st.delivered || 0) }),
      el('td', { class: 'failures', text: String(st.failures || 0) + (st.dead_letters ? ' (' + st.dead_letters + ' items to dead letters)' : '') }),
      el('td', { class: 'lag', text: r.lag === null || r.lag === undefined ? '—' : String(r.lag) }),
      el('td', { class: errClass, text: lastErr }),
      el('td', {}, rm));
  }));
  showAuth();
}

const views = { nodes, spiders, crawls, crawl, schedules, throttle, config, sinks };

// ---- routing and polling

function route() {
  let h = location.hash.slice(1);
  try { h = decodeURIComponent(h); } catch (e) { /* a malformed escape: read the hash as it is */ }
  h = h || 'nodes';
  let view = h, id = '';
  if (h.startsWith('crawl/')) { view = 'crawl'; id = h.slice(6); }
  if (!views[view]) view = 'nodes';
  if (view === 'crawl' && id !== state.crawl) { state.itemsAfter = 0; state.itemsStack = []; }
  // A message is about the view it was said on.
  if (view !== state.view || id !== state.crawl) say('');
  state.view = view; state.crawl = id;
  for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== 'view-' + view;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === '#' + view) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  refresh();
}

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  // The view read, named in an error even if the operator moved on.
  const view = state.view;
  try {
    await views[view]();
    if (view === 'crawls') await spidersForStart();
    document.body.dataset.loaded = view;
    // A read error is over once the view reads again (an action's
    // message stays until the next one).
    if ($('#msg').dataset.read && view === state.view) say('');
  } catch (e) {
    if (view === state.view) {
      say('Could not read the ' + view + ' view: ' + e.message, true);
      $('#msg').dataset.read = '1';
    }
  } finally {
    busy = false;
  }
}

let spidersLoaded = 0;
async function spidersForStart() {
  if (Date.now() - spidersLoaded < 10000 && $('#start-spider').options.length) return;
  spidersLoaded = Date.now();
  const list = await get('spiders');
  const sel = $('#start-spider');
  const cur = sel.value;
  sel.replaceChildren(...list.map((s) => el('option', { value: s.name, text: s.name })));
  if (cur) sel.value = cur;
}

// The master's info (whether actions are on) is read again now and then:
// a master restarted with or without a token changes it.
const INFO_MS = 15000;
let infoRead = 0;
function poll() {
  if (document.visibilityState !== 'visible') return;
  if (Date.now() - infoRead > INFO_MS) { infoRead = Date.now(); loadInfo(); }
  refresh();
}

function init() {
  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('#token').value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    $('#token').value = '';
    showAuth();
    say(t ? 'Token kept for this tab.' : 'Token forgotten.');
  });
  $('#token-forget').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); showAuth(); say('Token forgotten.'); });
  $('#spec-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showSpecErrors([]);
    try {
      const r = await act('POST', 'spiders', $('#spec-yaml').value, 'application/yaml');
      const what = r.changed === false ? ' unchanged' : ' applied';
      if (r.warning) say('Spider ' + r.name + what + ' (revision ' + r.revision + '), but ' + r.warning + '.', true);
      else say('Spider ' + r.name + what + ' (revision ' + r.revision + ').');
      spidersLoaded = 0;
      refresh();
    } catch (e) {
      if (e.body && e.body.errors) { showSpecErrors(e.body.errors); say('The spec has ' + e.body.errors.length + ' mistake(s); see them under the editor.', true); } else say(e.message, true);
    }
  });
  $('#start-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const spider = $('#start-spider').value;
    if (!spider) { say('Apply a spider first.', true); return; }
    try { const r = await act('POST', 'crawls', { spider }); say('Crawl ' + r.id + ' started.'); refresh(); } catch (e) { say(e.message, true); }
  });
  $('#crawl-cancel').addEventListener('click', () => cancelCrawl(state.crawl));
  $('#dead-requeue-all').addEventListener('click', () => requeue(state.crawl, 0, ''));
  $('#items-next').addEventListener('click', () => { state.itemsStack.push(state.itemsAfter); state.itemsAfter = state.itemsNext; items().catch((e) => say(e.message, true)); });
  $('#items-first').addEventListener('click', () => { state.itemsStack = []; state.itemsAfter = 0; items().catch((e) => say(e.message, true)); });
  $('#throttle-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const host = $('#th-host').value.trim();
    const body = { delay: $('#th-delay').value.trim() };
    if ($('#th-par').value) body.parallelism = +$('#th-par').value;
    try { await act('PUT', 'throttle/' + encodeURIComponent(host), body); say('Override for ' + host + ' set.'); refresh(); } catch (e) { say(e.message, true); }
  });
  $('#scale-form').addEventListener('submit', (ev) => { ev.preventDefault(); scaleAgent(); });
  $('#conc-form').addEventListener('submit', (ev) => { ev.preventDefault(); setConcurrency(); });
  $('#config-form').addEventListener('submit', (ev) => { ev.preventDefault(); configWrite(false); });
  $('#cfg-remove').addEventListener('click', () => configWrite(true));
  $('#cfg-key').addEventListener('change', () => { keyHelp(); clearCfgErrors(); });
  $('#cfg-level').addEventListener('change', () => { levelFields(); clearCfgErrors(); });
  levelFields();
  $('#sink-form').addEventListener('submit', (ev) => { ev.preventDefault(); sinkAdd(); });
  $('#sink-type').addEventListener('change', () => { urlHelp(); clearSinkErrors(); });
  urlHelp();
  window.addEventListener('hashchange', route);
  infoRead = Date.now();
  loadInfo().then(route);
  setInterval(poll, POLL_MS);
}

document.addEventListener('DOMContentLoaded', init);
