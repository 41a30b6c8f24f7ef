// The dashboard's script: the job list, the selected job (its graph, instances, fault tolerance) and its logs,
// the cluster's nodes, read from the JobManager every second; the job's actions (pause, resume, stop, cancel)
// as POSTs carrying the session's CSRF secret. Times are the JobManager's (it may be another machine).
'use strict';
const fromHash = /^#job=(\d+)$/.exec(location.hash); // a job's own address: /#job=ID
let selected = fromHash ? Number(fromHash[1]) : null;
let csrf = ''; // this session's, from /api/jobs: sent in X-SAGE-CSRF with every action
const last = new Map(); // task index -> {t, backpressure_ns}: the previous sample, for shares
let skew = 0; // the JobManager's clock minus this browser's (ms), from now_ms

async function get(path) {
  const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  if (r.status === 401) { location.reload(); throw new Error('logged out'); }
  return { status: r.status, body: await r.json() };
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text === undefined || text === null ? '' : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function duration(ms) {
  if (!(ms > 0)) return '';
  const s = ms / 1000;
  return s < 60 ? s.toFixed(1) + ' s' : s < 3600 ? (s / 60).toFixed(1) + ' min' : (s / 3600).toFixed(1) + ' h';
}

function bytes(b) {
  if (!b) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return b.toFixed(1) + u[i];
}

function rate(r) {
  if (!(r > 0)) return '0';
  return r >= 1e6 ? (r / 1e6).toFixed(2) + ' M' : r >= 1e3 ? (r / 1e3).toFixed(1) + ' k' : r.toFixed(0);
}

function ns(v) {
  if (!(v > 0)) return '-';
  return v >= 1e6 ? (v / 1e6).toFixed(2) + ' ms' : v >= 1e3 ? (v / 1e3).toFixed(1) + ' us' : v.toFixed(0) + ' ns';
}

function amount(v) { return Number.isInteger(v) ? String(v) : Number(v.toFixed(3)).toString(); }

// The launcher's nodes, their resources and what SAGE's placed jobs hold on each (/api/cluster).
async function nodes() {
  const { status, body } = await get('/api/cluster');
  if (status !== 200) return;
  document.getElementById('cluster-info').textContent = body.launcher === 'slurm'
    ? `Slurm: ${body.nodes.length} node${body.nodes.length === 1 ? '' : 's'} (as the JobManager's last sinfo saw them)`
    : 'This host (the local launcher)';
  const tbody = document.querySelector('#nodes tbody');
  tbody.replaceChildren();
  for (const n of body.nodes) {
    const h = n.held || {};
    const tr = document.createElement('tr');
    if (n.unavailable) tr.className = 'unavailable';
    cell(tr, n.name, 'name');
    cell(tr, `${amount(h.cpus || 0)} / ${n.cpus}`, 'num cpus');
    cell(tr, `${amount(h.gpus || 0)} / ${n.gpus}`, 'num gpus');
    cell(tr, `${h.memory ? bytes(h.memory) : '0'} / ${bytes(n.memory)}`, 'num memory');
    const names = new Set([...Object.keys(n.resources || {}), ...Object.keys(h.resources || {})]);
    cell(tr, [...names].sort().map((k) => `${k} ${amount((h.resources || {})[k] || 0)} / ${amount((n.resources || {})[k] || 0)}`).join(', '), 'custom');
    cell(tr, `${h.running || 0} / ${h.tasks || 0}`, 'num tasks');
    cell(tr, (h.jobs || []).join(', '), 'jobs');
    tbody.appendChild(tr);
  }
}

async function jobs() {
  const { body } = await get('/api/jobs');
  csrf = body.csrf || csrf;
  const jm = body.jobmanager || {};
  document.getElementById('jm').textContent =
    `${jm.host || ''}:${jm.port || ''} · ${jm.launcher || ''} launcher · version ${jm.version || ''}`;
  if (body.now_ms) skew = body.now_ms - Date.now();
  const tbody = document.querySelector('#jobs tbody');
  tbody.replaceChildren();
  const now = Date.now() + skew;
  for (const j of body.jobs) {
    const tr = document.createElement('tr');
    tr.dataset.id = j.job_id;
    if (j.job_id === selected) tr.className = 'selected';
    cell(tr, j.job_id, 'num');
    cell(tr, j.name, 'name');
    cell(tr, j.state, 'state ' + j.state);
    cell(tr, j.submitted_ms ? new Date(j.submitted_ms).toLocaleString() : '');
    cell(tr, duration(j.started_ms ? (j.ended_ms || now) - j.started_ms : 0), 'num');
    cell(tr, j.tasks, 'num');
    cell(tr, j.records_in ?? '', 'num');
    cell(tr, j.records_out ?? '', 'num');
    cell(tr, j.error);
    tr.addEventListener('click', () => select(j.job_id));
    tbody.appendChild(tr);
  }
  if (selected === null) { // the first live job, else the newest
    const live = body.jobs.find((j) => j.state === 'running' || j.state === 'paused' || j.state === 'pending');
    if (live || body.jobs.length) selected = (live || body.jobs[0]).job_id;
  }
  return jm;
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// The job's chains as boxes in columns by depth (longest path from a source), edges as arrows labelled
// with their routing; services, which no edge reaches, in a column of their own.
function graph(g, tasks) {
  const div = document.getElementById('graph');
  div.replaceChildren();
  if (!g || !g.chains) return;
  const n = g.chains.length, depth = new Array(n).fill(0);
  for (let pass = 0; pass < n; pass++)
    for (const e of g.edges) if (!e.feedback) depth[e.to] = Math.max(depth[e.to], depth[e.from] + 1);
  const service = g.chains.map((c) => c.name.startsWith('service:'));
  const maxd = Math.max(0, ...depth.filter((_, i) => !service[i]));
  const col = depth.map((d, i) => (service[i] ? maxd + 1 : d));
  const rows = new Map(), pos = [];
  const W = 190, H = 86, GX = 90, GY = 26;
  g.chains.forEach((c, i) => {
    const r = rows.get(col[i]) || 0;
    rows.set(col[i], r + 1);
    pos[i] = { x: 10 + col[i] * (W + GX), y: 10 + r * (H + GY) };
  });
  const width = 20 + (Math.max(...col) + 1) * (W + GX), height = 20 + Math.max(...rows.values()) * (H + GY);
  const s = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img' });
  s.appendChild(svg('defs', {})).appendChild(svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: 'auto' })).appendChild(svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#5b6b8c' }));
  for (const e of g.edges) {
    const a = pos[e.from], b = pos[e.to];
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    s.appendChild(svg('line', { x1, y1, x2, y2, stroke: '#5b6b8c', 'marker-end': 'url(#arrow)',
      class: e.feedback ? 'edge feedback' : 'edge' }));
    s.appendChild(svg('text', { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, 'text-anchor': 'middle', class: 'routing' }, e.routing));
  }
  g.chains.forEach((c, i) => {
    const p = pos[i];
    const running = tasks.filter((t) => t.operator === c.name && t.state === 'running').length;
    s.appendChild(svg('rect', { x: p.x, y: p.y, width: W, height: H, rx: 6, class: 'op' + (service[i] ? ' service' : '') }));
    s.appendChild(svg('text', { x: p.x + 10, y: p.y + 22, class: 'name' }, c.name));
    s.appendChild(svg('text', { x: p.x + 10, y: p.y + 40, class: 'meta' }, `×${c.parallelism} · ${running} running`));
    // the operators fused into the chain (as its instances report them), and what each instance requested
    const t = tasks.find((x) => x.operator === c.name && x.metrics && x.metrics.operators);
    const ops = t ? t.metrics.operators.map((o) => o.name) : [];
    if (ops.length > 1) s.appendChild(svg('text', { x: p.x + 10, y: p.y + 58, class: 'chain' }, ops.join(' → ')));
    s.appendChild(svg('text', { x: p.x + 10, y: p.y + 76, class: 'res' }, resources(c.resources)));
  });
  div.appendChild(s);
}

function resources(r) {
  if (!r) return '';
  const out = [];
  if (r.num_cpus) out.push(`${amount(r.num_cpus)} CPU`);
  if (r.num_gpus) out.push(`${amount(r.num_gpus)} GPU`);
  if (r.memory) out.push(bytes(r.memory));
  for (const [k, v] of Object.entries(r.resources || {})) out.push(`${k} ${amount(v)}`);
  return out.length ? out.join(' · ') : 'no request';
}

// ---- fault tolerance: the strategy, restarts and the last failure, checkpoints ----

function ago(ms) { return ms === undefined ? '' : ms < 1000 ? `${ms} ms ago` : `${duration(ms)} ago`; }

function faultTolerance(b) {
  const div = document.getElementById('ft');
  div.hidden = !b || !b.fault_tolerance;
  if (div.hidden) return;
  document.getElementById('ft-strategy').textContent = b.fault_tolerance_text || b.fault_tolerance.strategy;
  document.getElementById('ft-restarts').textContent = String(b.restarts ?? 0) +
    (b.restart_in_ms !== undefined ? ` (the next attempt in ${duration(b.restart_in_ms) || '0 s'})` : '');
  document.getElementById('ft-failure').textContent =
    b.last_failure ? `${ago(b.last_failure_age_ms)}: ${b.last_failure}` : 'none';
  const c = b.checkpoints;
  for (const tr of div.querySelectorAll('tr.ckpt')) tr.hidden = !c;
  if (!c) return;
  document.getElementById('ft-checkpoints').textContent =
    `${c.completed} committed, ${c.abandoned} abandoned, ${c.recoveries} recoveries` +
    (c.taking ? ` (taking #${c.taking})` : '');
  document.getElementById('ft-last').textContent = c.last_id
    ? `#${c.last_id}, ${ago(c.last_age_ms)}, ${bytes(c.last_bytes)}` + (c.last_path ? ` in ${c.last_path}` : '')
    : 'none yet';
}

function select(id) {
  selected = id;
  last.clear();
  document.getElementById('action-result').textContent = '';
  history.replaceState(null, '', '#job=' + id);
  tick();
}

// ---- actions ----

const ACTIONS = { pause: ['running'], resume: ['paused'], stop: ['running', 'paused', 'pending'],
  cancel: ['running', 'paused', 'pending'] };

function actionButtons(state) {
  for (const b of document.querySelectorAll('#job-actions button')) b.disabled = !ACTIONS[b.dataset.action].includes(state);
}

async function act(action) {
  const id = selected, out = document.getElementById('action-result');
  if ((action === 'stop' || action === 'cancel') && !confirm(`${action} job ${id}?`)) return;
  const r = await fetch(`/api/jobs/${id}/${action}`,
    { method: 'POST', credentials: 'same-origin', cache: 'no-store', headers: { 'X-SAGE-CSRF': csrf } });
  const body = await r.json().catch(() => ({}));
  out.className = r.ok ? '' : 'refused';
  out.textContent = r.ok ? `${action}: done, the job is ${body.state}` : `${action} refused: ${body.error || r.status}`;
  tick();
}

document.getElementById('job-actions').addEventListener('click', (e) => {
  const b = e.target.closest('button[data-action]');
  if (b && selected !== null) act(b.dataset.action);
});

// ---- logs: the selected task's tail, then what it gains (while "follow" is on) ----

const LOG_KEEP = 256 * 1024; // characters the panel keeps
const logAt = { job: null, task: null, next: null, live: true };

function logTasks(tasks) {
  const sel = document.getElementById('log-task');
  const key = selected + ':' + tasks.map((t) => t.task).join(',');
  if (sel.dataset.key === key) return;
  const keep = sel.value;
  sel.dataset.key = key;
  sel.replaceChildren();
  for (const t of tasks) {
    const o = document.createElement('option');
    o.value = t.task;
    o.textContent = `${t.operator} [${t.instance}]`;
    sel.appendChild(o);
  }
  if (tasks.some((t) => String(t.task) === keep)) sel.value = keep;
}

async function logs() {
  const sel = document.getElementById('log-task'), pre = document.getElementById('log');
  const info = document.getElementById('log-info');
  if (sel.value === '') { pre.textContent = ''; return; }
  const task = Number(sel.value);
  if (logAt.job !== selected || logAt.task !== task) {
    Object.assign(logAt, { job: selected, task, next: null, live: true });
    pre.textContent = '';
  } else if (!document.getElementById('log-follow').checked || !logAt.live) {
    return; // what is shown stays
  }
  const { status, body } = await get(`/api/jobs/${selected}/logs?task=${task}` +
    (logAt.next === null ? '' : `&offset=${logAt.next}`));
  if (logAt.job !== selected || logAt.task !== task) return; // another task was chosen meanwhile
  if (status !== 200) { info.textContent = body.error || ''; return; }
  if (logAt.next !== null && body.from < logAt.next) pre.textContent = ''; // the file was replaced
  let text = body.text;
  if (body.skipped > 0) text = `[… ${body.skipped} earlier bytes not shown …]\n` + text;
  if (text) pre.appendChild(document.createTextNode(text)); // text, never markup
  if (pre.textContent.length > LOG_KEEP) pre.textContent = pre.textContent.slice(-LOG_KEEP);
  Object.assign(logAt, { next: body.next, live: body.live });
  info.textContent = `${bytes(body.size)} in logs/${body.operator}.${body.instance}.log` + (body.live ? '' : ' (the job ended)');
  if (document.getElementById('log-follow').checked) pre.scrollTop = pre.scrollHeight;
}

// (through tick: one refresh at a time)
document.getElementById('log-task').addEventListener('change', () => tick());
document.getElementById('log-follow').addEventListener('change', () => { logAt.live = true; tick(); });

// ---- the selected job ----

async function job() {
  const section = document.getElementById('job');
  if (selected === null) { section.hidden = true; return; }
  const { status, body } = await get('/api/jobs/' + selected);
  section.hidden = false;
  actionButtons(status === 200 ? body.state : '');
  document.getElementById('job-title').textContent =
    status === 200 ? `Job ${body.job_id} "${body.name}": ${body.state}` : `Job ${selected}`;
  document.getElementById('job-error').textContent = status === 200 ? body.error || '' : body.error;
  const tbody = document.querySelector('#tasks tbody');
  tbody.replaceChildren();
  faultTolerance(status === 200 ? body : null);
  if (status !== 200) { document.getElementById('graph').replaceChildren(); logTasks([]); return; }
  graph(body.graph, body.tasks);
  if (body.ended) {
    const p = document.createElement('p');
    p.className = 'note';
    p.textContent = `Ended ${body.ended_ms ? new Date(body.ended_ms).toLocaleString() : ''}: the counters below are the last ` +
      'each instance reported (the graph is drawn while a job runs).';
    document.getElementById('graph').replaceChildren(p);
  }
  const now = performance.now();
  for (const t of body.tasks) {
    const m = t.metrics || {};
    const ops = m.operators || [];
    const tr = document.createElement('tr');
    cell(tr, t.operator, 'name');
    cell(tr, t.instance, 'num');
    cell(tr, t.state, 'state ' + t.state);
    cell(tr, t.host);
    cell(tr, t.pid, 'num');
    cell(tr, t.cpus || '-');
    cell(tr, t.gpus || '-');
    cell(tr, bytes(t.memory_limit), 'num');
    cell(tr, ops.length ? ops[0].records_in : (m.requests ?? ''), 'num');
    cell(tr, ops.length ? ops[ops.length - 1].records_out : '', 'num');
    cell(tr, body.ended ? '-' : rate(m.records_per_s), 'num rate');
    const pt = m.processing_time_ns || {};
    cell(tr, ns(pt.p50), 'num');
    cell(tr, ns(pt.p99), 'num');
    const prev = last.get(t.task);
    const bp = m.backpressure_ns || 0;
    let share = '';
    if (prev && now > prev.t) share = (Math.min(1, Math.max(0, (bp - prev.bp) / 1e6 / (now - prev.t))) * 100).toFixed(0) + ' %';
    last.set(t.task, { t: now, bp });
    cell(tr, share, 'num');
    const user = [];
    for (const o of ops) {
      for (const [k, v] of Object.entries(o.user || {})) {
        if (v.hist) user.push(`${k}: n=${v.hist.count} p50=${amount(v.hist.p50 ?? 0)} p99=${amount(v.hist.p99 ?? 0)} max=${v.hist.max}`);
        else user.push(`${k}=${v.counter}`);
      }
    }
    cell(tr, user.join(' '));
    tbody.appendChild(tr);
  }
  logTasks(body.tasks);
  await logs();
}

let ticking = false; // one refresh at a time: a log chunk is appended once

async function tick() {
  if (ticking) return;
  ticking = true;
  try {
    await jobs();
    await job();
    await nodes();
    document.getElementById('clock').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById('clock').textContent = 'not updated: ' + e.message;
  } finally {
    ticking = false;
  }
}

tick();
setInterval(tick, 1000);
