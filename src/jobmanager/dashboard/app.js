// The dashboard's script: the job list and the selected job, read from the JobManager every second.
'use strict';
let selected = null;
const last = new Map(); // task index -> {t, backpressure_ns}: the previous sample, for shares

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

let tasksByHost = new Map(); // node -> live tasks of the selected job there

function nodes(list) {
  const tbody = document.querySelector('#nodes tbody');
  tbody.replaceChildren();
  for (const n of list || []) {
    const tr = document.createElement('tr');
    cell(tr, n.name, 'name');
    cell(tr, n.cpus, 'num');
    cell(tr, n.gpus, 'num');
    cell(tr, bytes(n.memory), 'num');
    cell(tr, Object.entries(n.resources || {}).map(([k, v]) => `${k}=${v}`).join(' '));
    cell(tr, tasksByHost.get(n.name) || '', 'num');
    tbody.appendChild(tr);
  }
}

async function jobs() {
  const { body } = await get('/api/jobs');
  const jm = body.jobmanager || {};
  document.getElementById('jm').textContent =
    `${jm.host || ''}:${jm.port || ''} · ${jm.launcher || ''} launcher · version ${jm.version || ''}`;
  const tbody = document.querySelector('#jobs tbody');
  tbody.replaceChildren();
  const now = Date.now();
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
    cell(tr, j.error);
    tr.addEventListener('click', () => { selected = j.job_id; last.clear(); tick(); });
    tbody.appendChild(tr);
  }
  if (selected === null) {
    const live = body.jobs.find((j) => j.state === 'running' || j.state === 'paused' || j.state === 'pending');
    if (live) selected = live.job_id;
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
    for (const e of g.edges) depth[e.to] = Math.max(depth[e.to], depth[e.from] + 1);
  const service = g.chains.map((c) => c.name.startsWith('service:'));
  const maxd = Math.max(0, ...depth.filter((_, i) => !service[i]));
  const col = depth.map((d, i) => (service[i] ? maxd + 1 : d));
  const rows = new Map(), pos = [];
  const W = 170, H = 54, GX = 90, GY = 26;
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
    s.appendChild(svg('line', { x1, y1, x2, y2, stroke: '#5b6b8c', 'marker-end': 'url(#arrow)', class: 'edge' }));
    s.appendChild(svg('text', { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, 'text-anchor': 'middle', class: 'routing' }, e.routing));
  }
  g.chains.forEach((c, i) => {
    const p = pos[i];
    const running = tasks.filter((t) => t.operator === c.name && t.state === 'running').length;
    s.appendChild(svg('rect', { x: p.x, y: p.y, width: W, height: H, rx: 6, class: 'op' + (service[i] ? ' service' : '') }));
    s.appendChild(svg('text', { x: p.x + 10, y: p.y + 22, class: 'name' }, c.name));
    s.appendChild(svg('text', { x: p.x + 10, y: p.y + 42, class: 'meta' }, `×${c.parallelism} · ${running} running`));
  });
  div.appendChild(s);
}

async function job() {
  const section = document.getElementById('job');
  if (selected === null) { section.hidden = true; return; }
  const { status, body } = await get('/api/jobs/' + selected);
  section.hidden = false;
  document.getElementById('job-title').textContent =
    status === 200 ? `Job ${body.job_id} "${body.name}": ${body.state}` : `Job ${selected}`;
  document.getElementById('job-error').textContent = status === 200 ? body.error || '' : body.error;
  const tbody = document.querySelector('#tasks tbody');
  tbody.replaceChildren();
  const ft = [];
  if (status === 200 && body.restarts !== undefined) ft.push(`restarts: ${body.restarts}`);
  if (status === 200 && body.last_failure) ft.push(`last failure: ${body.last_failure}`);
  if (status === 200 && body.checkpoints) {
    const c = body.checkpoints;
    ft.push(`checkpoints: ${c.completed ?? 0} committed, ${c.abandoned ?? 0} abandoned` + (c.last_path ? `, the last ${c.last_path}` : ''));
  }
  document.getElementById('job-ft').textContent = ft.join(' · ');
  tasksByHost = new Map();
  if (status !== 200) { document.getElementById('graph').replaceChildren(); return; }
  for (const t of body.tasks) if (t.state === 'running') tasksByHost.set(t.host, (tasksByHost.get(t.host) || 0) + 1);
  graph(body.graph, body.tasks);
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
    cell(tr, rate(m.records_per_s), 'num rate');
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
        if (v.hist) user.push(`${k}: n=${v.hist.count} mean=${v.hist.count ? (v.hist.sum / v.hist.count).toPrecision(4) : '-'} max=${v.hist.max}`);
        else user.push(`${k}=${v.counter}`);
      }
    }
    cell(tr, user.join(' '));
    tbody.appendChild(tr);
  }
}

async function tick() {
  try {
    const jm = await jobs();
    await job();
    nodes(jm.nodes);
    document.getElementById('clock').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById('clock').textContent = 'not updated: ' + e.message;
  }
}

tick();
setInterval(tick, 1000);
