// The adaptrec status page. It polls /metrics (Prometheus text, parsed
// here, so the figures shown are /metrics' own) and /status.json (what
// /metrics cannot carry: the architecture's history, the decisions, the
// replicas), and draws both with inline SVG. Plain JS, no dependencies.
'use strict';

const POLL_MS = 2000;
const KEEP = 300; // points of the page's own histories (10 minutes)
const COLORS = ['#2563eb', '#dc6803', '#039855', '#7a5af8', '#d92d20', '#0e9384'];

const history = { rate: [], lag: [], hr: [], reward: [] };
let previous = null; // {t, events} of the last poll, for events/s
let polls = 0;

// parseMetrics turns the Prometheus text format into a Map from metric
// name to its samples ({labels, value}).
function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line[0] === '#') continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value: v });
  }
  return out;
}

// total is the sum of a metric's samples, or null if /metrics has none.
function total(metrics, name) {
  const s = metrics.get(name);
  return s ? s.reduce((a, x) => a + x.value, 0) : null;
}

const fmtInt = v => Math.round(v).toLocaleString('en-US');

// show puts a figure in element id: its exact value in data-value (what
// the tests compare with /metrics), and text for people.
function show(id, value, fmt) {
  const el = document.getElementById(id);
  el.dataset.value = value === null ? '' : String(value);
  el.textContent = value === null || Number.isNaN(value) ? '–' : fmt(value);
}

function keep(series, point) {
  series.push(point);
  if (series.length > KEEP) series.shift();
}

function renderMetrics(metrics, now) {
  const events = total(metrics, 'adaptrec_events_consumed_total');
  let rate = null;
  if (previous && events !== null && now > previous.t) rate = Math.max(0, (events - previous.events) / ((now - previous.t) / 1000));
  if (events !== null) previous = { t: now, events };
  const lagSamples = metrics.get('adaptrec_consumer_lag') || [];
  const lag = lagSamples.length ? lagSamples.reduce((a, x) => a + x.value, 0) : null;
  const hr = total(metrics, 'adaptrec_quality_hr_at_10');
  const reward = total(metrics, 'adaptrec_reward_mean');
  show('events-rate', rate, v => v.toFixed(0));
  show('events-total', events, fmtInt);
  show('lag', lag, fmtInt);
  document.getElementById('lag-partitions').textContent = lagSamples
    .sort((a, b) => Number(a.labels.partition) - Number(b.labels.partition))
    .map(x => 'p' + x.labels.partition + ' ' + fmtInt(x.value)).join(' · ');
  show('hr10', hr, v => v.toFixed(4));
  show('reward', reward, v => v.toFixed(3));
  show('params', total(metrics, 'adaptrec_model_parameters'), fmtInt);
  show('lists', total(metrics, 'adaptrec_recommendation_lists_total'), fmtInt);
  show('dlq', total(metrics, 'adaptrec_dlq_messages_total') ?? 0, fmtInt);
  if (rate !== null) keep(history.rate, [now, rate]);
  if (lag !== null) keep(history.lag, [now, lag]);
  if (hr !== null) keep(history.hr, [now, hr]);
  if (reward !== null) keep(history.reward, [now, reward]);
  plot('chart-rate', [{ name: 'events/s', points: history.rate }]);
  plot('chart-lag', [{ name: 'lag', points: history.lag }]);
  plot('chart-quality', [{ name: 'HR@10', points: history.hr }, { name: 'reward', points: history.reward }]);
}

// plot draws series ({name, points: [[t, v], ...]}) as lines in an SVG,
// on one scale, with the range and a legend; step draws steps.
function plot(id, series, step) {
  const svg = document.getElementById(id);
  const W = 420, H = 140, L = 46, R = 8, T = 8, B = 20;
  const pts = series.flatMap(s => s.points).filter(p => p[1] !== null);
  let parts = [`<line class="axis" x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}"/>`];
  if (pts.length === 0) {
    svg.innerHTML = parts.join('') + `<text x="${L + 6}" y="${H / 2}">no data yet</text>`;
    return;
  }
  const t0 = Math.min(...pts.map(p => p[0])), t1 = Math.max(...pts.map(p => p[0]));
  let lo = Math.min(0, ...pts.map(p => p[1])), hi = Math.max(...pts.map(p => p[1]));
  if (hi <= lo) hi = lo + 1;
  const x = t => L + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (W - L - R);
  const y = v => H - B - (v - lo) / (hi - lo) * (H - B - T);
  const label = v => Math.abs(hi) >= 1000 ? fmtInt(v) : Number(v.toPrecision(3)).toString();
  parts.push(`<text x="2" y="${T + 8}">${label(hi)}</text><text x="2" y="${H - B}">${label(lo)}</text>`);
  parts.push(`<text x="${L}" y="${H - 4}">${new Date(t0).toLocaleTimeString('en-GB')}</text>`);
  parts.push(`<text x="${W - R}" y="${H - 4}" text-anchor="end">${new Date(t1).toLocaleTimeString('en-GB')}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    // A null value breaks the line (a layer that did not exist then).
    let coords = [];
    const flush = () => {
      if (coords.length === 1) coords.push(coords[0].replace(/^[^,]+/, (Number(coords[0].split(',')[0]) + 2).toFixed(1)));
      if (coords.length) parts.push(`<polyline stroke="${c}" points="${coords.join(' ')}"/>`);
      coords = [];
    };
    s.points.forEach((p, k) => {
      if (p[1] === null) { flush(); return; }
      const prev = k > 0 ? s.points[k - 1][1] : null;
      if (step && prev !== null) coords.push(`${x(p[0]).toFixed(1)},${y(prev).toFixed(1)}`);
      coords.push(`${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
    });
    flush();
    parts.push(`<text x="${L + 6 + i * 90}" y="${T + 8}" style="fill:${c}">${s.name}</text>`);
  });
  svg.innerHTML = parts.join('');
}

function esc(s) {
  return String(s).replace(/[&<>"]/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
}

function action(a) {
  if (a.kind === 'widen' || a.kind === 'narrow') return `${a.kind}(layer ${a.layer}, ${a.k})`;
  if (a.kind === 'add_layer' || a.kind === 'remove_layer') return `${a.kind}(${a.layer})`;
  return a.kind;
}

const widths = w => '[' + (w || []).join(', ') + ']';
const clock = at => new Date(at).toLocaleTimeString('en-GB');

function renderStatus(st) {
  document.getElementById('model-name').textContent = st.model.name || 'unknown';
  document.getElementById('replica-name').textContent = (st.replicas[0] && st.replicas[0].name) || '–';
  renderArchitecture(st);
  renderDecisions(st);
  renderReplicas(st);
}

function renderArchitecture(st) {
  const none = document.getElementById('arch-none');
  const hist = st.history.map(p => ({ t: Date.parse(p.at), p }));
  const last = st.history.length ? st.history[st.history.length - 1] : null;
  document.getElementById('params-split').textContent = last && st.model.architecture
    ? `network ${fmtInt(last.net_params)} · item tables ${fmtInt(last.params - last.net_params)} (embedding tiers: not reported)` : '';
  plot('chart-params', [{ name: 'model', points: hist.map(h => [h.t, h.p.params]) },
    { name: 'network', points: hist.map(h => [h.t, h.p.net_params]) }], true);
  if (!st.model.architecture) {
    none.hidden = false;
    none.textContent = `The model ${st.model.name || ''} has no network: it has no layer widths and takes no architecture decisions.`;
    plot('chart-widths', []);
    return;
  }
  none.hidden = true;
  const depth = Math.max(0, ...st.history.map(p => p.widths.length));
  const series = [];
  for (let i = 0; i < depth; i++) {
    series.push({ name: 'layer ' + i, points: hist.map(h => [h.t, h.p.widths.length > i ? h.p.widths[i] : null]) });
  }
  plot('chart-widths', series, true);
  document.getElementById('chart-widths').dataset.widths = last ? last.widths.join(',') : '';
}

function renderDecisions(st) {
  const none = document.getElementById('decisions-none');
  none.hidden = st.decisions.length > 0;
  none.textContent = st.model.architecture
    ? 'No architecture decision yet (only the adaptive models take them, one per epoch).'
    : 'This model takes no architecture decisions.';
  document.querySelector('#decisions tbody').innerHTML = st.decisions.map(d => {
    const terms = d.rewarded
      ? `<td class="gain" data-value="${d.gain}">${d.gain.toFixed(4)}</td><td class="cost" data-value="${d.cost}">${d.cost.toFixed(4)}</td><td class="reward" data-value="${d.reward}">${d.reward.toFixed(4)}</td>`
      : '<td class="pending" colspan="3">reward pending (next epoch)</td>';
    return `<tr data-epoch="${d.epoch}"><td>${d.epoch}</td><td>${clock(d.at)}</td><td>${esc(action(d.action))}</td>` +
      `<td>${widths(d.before)} → ${widths(d.after)}</td><td>${fmtInt(d.params_added)}</td>${terms}</tr>`;
  }).join('');
}

function renderReplicas(st) {
  const none = document.getElementById('snapshots-none');
  none.hidden = st.model.snapshots;
  none.textContent = `The model ${st.model.name || ''} keeps no snapshots.`;
  document.querySelector('#replicas tbody').innerHTML = st.replicas.map(r => {
    const age = r.snapshot_age_seconds;
    return `<tr data-replica="${esc(r.name)}"><td>${esc(r.name)}${r.self ? ' (this worker)' : ''}</td>` +
      `<td>${r.decider ? 'yes' : 'no'}</td><td>${r.live ? 'yes' : 'no'}</td><td>${esc(r.snapshot || 'none')}</td>` +
      `<td class="age" data-value="${age ?? ''}">${age === null ? '–' : age.toFixed(1) + ' s'}</td></tr>`;
  }).join('');
}

async function fetchOK(path, how) {
  const r = await fetch(path, { cache: 'no-store' });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return how(r);
}

async function poll() {
  const err = document.getElementById('error');
  try {
    const [text, st] = await Promise.all([fetchOK('metrics', r => r.text()), fetchOK('status.json', r => r.json())]);
    // The worker's clock, not the browser's, times the figures.
    renderMetrics(parseMetrics(text), Date.parse(st.now));
    renderStatus(st);
    document.getElementById('updated').textContent = clock(st.now);
    err.hidden = true;
    polls++;
    document.body.dataset.polls = String(polls);
    document.body.dataset.ready = 'true';
  } catch (e) {
    err.hidden = false;
    err.textContent = 'cannot read the worker: ' + e.message;
  }
}

poll();
setInterval(poll, POLL_MS);
