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

function graph(tasks) {
  // operators in task order (chains, then services), each with its parallelism; arrows follow that order
  const div = document.getElementById('graph');
  div.replaceChildren();
  const ops = [];
  for (const t of tasks) {
    const o = ops.find((x) => x.name === t.operator);
    if (o) o.parallelism++;
    else ops.push({ name: t.operator, parallelism: 1, cpus: t.cpus, gpus: t.gpus, mem: t.memory_limit });
  }
  ops.forEach((o, i) => {
    const service = o.name.startsWith('service:');
    if (i > 0 && !service) {
      const a = document.createElement('span');
      a.className = 'arrow';
      a.textContent = '→';
      div.appendChild(a);
    }
    const box = document.createElement('div');
    box.className = 'op' + (service ? ' service' : '');
    const n = document.createElement('div');
    n.className = 'name';
    n.textContent = o.name;
    const m = document.createElement('div');
    m.className = 'meta';
    m.textContent = `×${o.parallelism}` + (o.gpus ? ` · GPUs ${o.gpus}` : '') + (o.mem ? ` · ${bytes(o.mem)}` : '');
    box.append(n, m);
    div.appendChild(box);
  });
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
  graph(body.tasks);
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
