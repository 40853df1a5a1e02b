// app.js: the lash dashboard. Plain JavaScript, no build step, no libraries.
//
// Everything a row holds (ids, kinds, payloads, results, errors, worker ids) is
// hostile: it only ever reaches the page as textContent or an attribute value
// set with setAttribute, never as HTML. The server's Content-Security-Policy
// also forbids inline scripts, as a second line.
'use strict';

const POLL_MS = 2000;
const HISTORY_MS = 5 * 60 * 1000;
const STATES = ['pending', 'running', 'completed', 'failed', 'cancelled', 'abandoned'];

const ui = {
  queue: null,        // the selected queue
  state: '',          // the state filter
  cursors: ['0'],     // the cursor of each page seen so far; the last is the current one
  next: '0',          // the cursor of the page after the current one ('0': none)
  detail: null,       // the id shown in the detail panel
  actions: false,     // whether the server accepts actions
  history: new Map(), // queue -> [{t, completed, failed}]
};

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fmtTime(ms) {
  if (!ms || ms <= 0) return '-';
  try { return new Date(ms).toISOString(); } catch (e) { return String(ms); }
}

function fmtAge(ms) {
  if (!ms || ms <= 0) return '-';
  if (ms < 1000) return ms + 'ms';
  if (ms < 60000) return (ms / 1000).toFixed(1) + 's';
  if (ms < 3600000) return Math.floor(ms / 60000) + 'm' + String(Math.floor(ms / 1000) % 60).padStart(2, '0') + 's';
  return Math.floor(ms / 3600000) + 'h' + String(Math.floor(ms / 60000) % 60).padStart(2, '0') + 'm';
}

function say(text, bad) {
  const s = $('status');
  s.textContent = text;
  s.className = bad ? 'bad' : 'ok';
}

function token() {
  try { return sessionStorage.getItem('lash-token') || ''; } catch (e) { return ''; }
}

async function api(path, method) {
  const opts = { method: method || 'GET', headers: {}, credentials: 'same-origin' };
  if (opts.method === 'POST' && token()) opts.headers['X-Lash-Token'] = token();
  const r = await fetch(path, opts);
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const why = body && typeof body.error === 'string' ? body.error : 'HTTP ' + r.status;
    const err = new Error(why);
    err.status = r.status;
    throw err;
  }
  return body;
}

function q(params) {
  return Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v)).join('&');
}

// ---- queues, rates and the chart ---------------------------------------------

function record(queueStats) {
  const h = ui.history.get(queueStats.queue) || [];
  const t = queueStats.now_ms;
  if (!h.length || h[h.length - 1].t < t)
    h.push({ t, completed: queueStats.total_completed, failed: queueStats.total_failed });
  while (h.length > 2 && t - h[0].t > HISTORY_MS) h.shift();
  ui.history.set(queueStats.queue, h);
}

function rates(queue) {
  const h = ui.history.get(queue) || [];
  const out = [];
  for (let i = 1; i < h.length; i++) {
    const dt = (h[i].t - h[i - 1].t) / 1000;
    if (dt <= 0) continue;
    out.push({ t: h[i].t, completed: Math.max(0, (h[i].completed - h[i - 1].completed) / dt),
               failed: Math.max(0, (h[i].failed - h[i - 1].failed) / dt) });
  }
  return out;
}

function renderQueues(list) {
  const body = $('queues').tBodies[0];
  body.replaceChildren();
  for (const s of list) {
    record(s);
    const r = rates(s.queue);
    const last = r.length ? r[r.length - 1] : null;
    const tr = el('tr');
    tr.setAttribute('data-queue', s.queue);
    if (s.queue === ui.queue) tr.className = 'selected';
    const cells = [['queue', s.queue]];
    for (const st of STATES) cells.push([st, s.count[st]]);
    cells.push(['eligible', s.eligible], ['oldest', fmtAge(s.oldest_due_ms)], ['workers', s.workers],
               ['completed_rate', last ? last.completed.toFixed(1) : '-'],
               ['failed_rate', last ? last.failed.toFixed(1) : '-']);
    for (const [k, v] of cells) {
      const td = el('td', v);
      td.setAttribute('data-k', k);
      tr.appendChild(td);
    }
    tr.addEventListener('click', () => selectQueue(s.queue));
    body.appendChild(tr);
  }
  if (!list.length) {
    const tr = el('tr');
    const td = el('td', 'no queues yet: submit a process', 'muted');
    td.colSpan = 12;
    tr.appendChild(td);
    body.appendChild(tr);
  }
}

function drawChart() {
  const c = $('chart');
  const ctx = c.getContext('2d');
  const w = c.width, h = c.height, pad = 24;
  ctx.clearRect(0, 0, w, h);
  const data = ui.queue ? rates(ui.queue) : [];
  const now = data.length ? data[data.length - 1].t : Date.now();
  let max = 1;
  for (const d of data) max = Math.max(max, d.completed, d.failed);
  ctx.strokeStyle = '#dde2e8';
  ctx.fillStyle = '#6b7480';
  ctx.font = '11px sans-serif';
  ctx.beginPath();
  ctx.moveTo(pad, h - pad); ctx.lineTo(w - 4, h - pad);
  ctx.moveTo(pad, 6); ctx.lineTo(pad, h - pad);
  ctx.stroke();
  ctx.fillText(max.toFixed(1), 2, 14);
  ctx.fillText('0', 8, h - pad);
  ctx.fillText('-5m', pad, h - 8);
  ctx.fillText('now', w - 28, h - 8);
  const x = (t) => pad + (w - pad - 4) * (1 - (now - t) / HISTORY_MS);
  const y = (v) => h - pad - (h - pad - 8) * (v / max);
  for (const [key, color] of [['completed', '#1f8a4c'], ['failed', '#c0392b']]) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    data.forEach((d, i) => (i ? ctx.lineTo(x(d.t), y(d[key])) : ctx.moveTo(x(d.t), y(d[key]))));
    ctx.stroke();
  }
}

// ---- processes -----------------------------------------------------------------

async function loadProcesses() {
  if (!ui.queue) return;
  const cursor = ui.cursors[ui.cursors.length - 1];
  const page = await api('/api/processes?' + q({ queue: ui.queue, state: ui.state, cursor, limit: 50 }));
  ui.next = page.next;
  const body = $('procs').tBodies[0];
  body.replaceChildren();
  for (const row of page.rows) {
    const tr = el('tr');
    tr.setAttribute('data-id', row.id);
    tr.setAttribute('data-state', row.state);
    if (row.id === ui.detail) tr.className = 'selected';
    tr.appendChild(el('td', row.id));
    tr.appendChild(el('td', row.state, 'st-' + (STATES.includes(row.state) ? row.state : 'other')));
    tr.appendChild(el('td', row.kind));
    tr.appendChild(el('td', row.attempt));
    tr.appendChild(el('td', fmtTime(row.score_ms)));
    tr.addEventListener('click', () => openDetail(row.id));
    body.appendChild(tr);
  }
  $('page').textContent = 'page ' + ui.cursors.length + ', ' + page.rows.length + ' rows' +
    (page.next === '0' ? ' (last)' : '');
  $('next').disabled = page.next === '0';
  $('first').disabled = ui.cursors.length === 1;
}

// ---- one process -----------------------------------------------------------------

function show(pre, v) {
  if (v === undefined || v === null) { pre.textContent = '-'; return; }
  pre.textContent = typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

async function loadDetail() {
  if (!ui.detail || !ui.queue) return;
  let d;
  try {
    d = await api('/api/process?' + q({ queue: ui.queue, id: ui.detail }));
  } catch (e) {
    if (e.status === 404) { closeDetail(); say('process ' + ui.detail + ' is gone', true); return; }
    throw e;
  }
  const rec = d.record || {};
  $('detail').hidden = false;
  $('detail-id').textContent = rec.id || ui.detail;
  $('malformed').hidden = !d.malformed;
  $('malformed').textContent = d.malformed ? 'malformed row: ' + d.malformed : '';
  const dl = $('record');
  dl.replaceChildren();
  const fields = [['state', rec.state], ['kind', rec.kind], ['attempt', rec.attempt + ' of ' + rec.max_attempts],
    ['fence', rec.fence], ['owner', rec.owner], ['created', fmtTime(rec.created_ms)],
    ['updated', fmtTime(rec.updated_ms)], ['run at', fmtTime(rec.run_at)], ['finished', fmtTime(rec.finished_ms)],
    ['timeout', rec.timeout_ms ? rec.timeout_ms + ' ms' : 'none'], ['backoff', rec.backoff], ['on lost', rec.on_lost]];
  for (const [k, v] of fields) {
    if (v === undefined || v === null) continue;
    dl.appendChild(el('dt', k));
    const dd = el('dd', v);
    dd.setAttribute('data-k', k);
    dl.appendChild(dd);
  }
  show($('payload'), rec.payload);
  show($('result'), rec.result);
  show($('error'), rec.error);
  const body = $('events').tBodies[0];
  body.replaceChildren();
  for (const ev of d.events || []) {
    const tr = el('tr');
    const t = parseInt(String(ev.stream_id || '').split('-')[0], 10);
    tr.appendChild(el('td', fmtTime(t)));
    tr.appendChild(el('td', ev.event));
    const rest = Object.entries(ev).filter(([k]) => !['stream_id', 'event', 'id'].includes(k))
      .map(([k, v]) => k + '=' + (typeof v === 'string' ? v : JSON.stringify(v))).join('  ');
    tr.appendChild(el('td', rest));
    body.appendChild(tr);
  }
  // Which actions apply is the server's to say (the transition table in C).
  $('retry').disabled = !ui.actions || !(d.actions && d.actions.retry);
  $('cancel').disabled = !ui.actions || !(d.actions && d.actions.cancel);
}

function openDetail(id) {
  ui.detail = id;
  loadDetail().then(() => loadProcesses()).catch((e) => say(e.message, true));
}

function closeDetail() {
  ui.detail = null;
  $('detail').hidden = true;
}

// ---- workers ---------------------------------------------------------------------

async function loadWorkers() {
  if (!ui.queue) return;
  const d = await api('/api/workers?' + q({ queue: ui.queue }));
  const body = $('workers').tBodies[0];
  body.replaceChildren();
  for (const w of d.workers) {
    const tr = el('tr');
    tr.setAttribute('data-worker', w.id);
    tr.appendChild(el('td', w.id));
    tr.appendChild(el('td', w.seconds_ago.toFixed(1), w.seconds_ago > 60 ? 'bad' : ''));
    body.appendChild(tr);
  }
}

// ---- actions -----------------------------------------------------------------------

async function act(what, params) {
  try {
    const r = await api('/api/' + what + '?' + q(params), 'POST');
    say(what + ': ' + (r.id ? r.id + ' ' : '') + r.status);
  } catch (e) {
    say(what + ' refused: ' + e.message, true);
  }
  await refresh();
}

// ---- the loop ----------------------------------------------------------------------

function selectQueue(name) {
  if (name === ui.queue) return;
  ui.queue = name;
  ui.cursors = ['0'];
  closeDetail();
  for (const id of ['chart-queue', 'procs-queue', 'workers-queue']) $(id).textContent = name;
  refresh();
}

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const d = await api('/api/queues');
    if (!ui.queue && d.queues.length) selectQueue(d.queues[0].queue);
    renderQueues(d.queues);
    drawChart();
    await Promise.all([loadProcesses(), loadWorkers(), loadDetail()]);
    $('conn').textContent = 'redis up';
    $('conn').className = 'pill up';
  } catch (e) {
    $('conn').textContent = e.status === 503 ? 'redis down' : 'error';
    $('conn').className = 'pill down';
    say(e.message, true);
  } finally {
    busy = false;
  }
}

async function start() {
  const cfg = await api('/api/config');
  ui.actions = cfg.actions;
  $('version').textContent = 'v' + cfg.version + ' (lua ' + String(cfg.lua_library).slice(0, 12) + ')';
  $('tokenbox').hidden = !cfg.actions;
  $('readonly').hidden = cfg.actions;
  for (const b of document.querySelectorAll('button.action')) b.disabled = !cfg.actions;
  $('tokenstate').textContent = token() ? 'token set' : 'no token';
  $('tokenbox').addEventListener('submit', (ev) => {
    ev.preventDefault(); // never sent anywhere: kept in this tab's sessionStorage
    try { sessionStorage.setItem('lash-token', $('token').value); } catch (e) { /* private mode */ }
    $('token').value = '';
    $('tokenstate').textContent = token() ? 'token set' : 'no token';
  });
  $('state').addEventListener('change', () => {
    ui.state = $('state').value;
    ui.cursors = ['0'];
    loadProcesses().catch((e) => say(e.message, true));
  });
  $('next').addEventListener('click', () => {
    if (ui.next === '0') return;
    ui.cursors.push(ui.next);
    loadProcesses().catch((e) => say(e.message, true));
  });
  $('first').addEventListener('click', () => {
    ui.cursors = ['0'];
    loadProcesses().catch((e) => say(e.message, true));
  });
  $('close').addEventListener('click', closeDetail);
  $('retry').addEventListener('click', () => act('retry', { queue: ui.queue, id: ui.detail }));
  $('cancel').addEventListener('click', () => act('cancel', { queue: ui.queue, id: ui.detail }));
  $('poke').addEventListener('click', () => act('poke', { queue: ui.queue }));
  await refresh();
  setInterval(refresh, POLL_MS);
}

start().catch((e) => say('cannot start: ' + e.message, true));
