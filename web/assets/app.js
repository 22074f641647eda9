// adtracker dashboard: hash-routed pages over the documented JSON API (README "Dashboard"). No library, no build step.
'use strict';

// ---------- small helpers ----------

// h builds an element; children are nodes or strings (text, never HTML: ad names are user data).
function h(tag, attrs, ...children) {
  const svg = ['svg', 'path', 'line', 'text', 'g', 'title', 'polyline', 'rect'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// put replaces el's children, skipping the null and false that optional parts leave.
function put(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

const intFmt = new Intl.NumberFormat('en-US');
const fmtInt = (v) => intFmt.format(v);
const fmtPct = (v) => (v * 100).toFixed(2) + '%';
const fmtNum = (v) => (Math.round(v * 100) / 100).toFixed(2);
const fmtBytes = (v) => v < 1024 ? v + ' B' : v < 1048576 ? (v / 1024).toFixed(1) + ' KiB' : (v / 1048576).toFixed(1) + ' MiB';

// ---------- tokens ----------

const tokens = {
  read: () => sessionStorage.getItem('adtracker.read_token') || '',
  admin: () => sessionStorage.getItem('adtracker.admin_token') || '',
};

function setupTokens() {
  const r = document.getElementById('read-token'), a = document.getElementById('admin-token');
  r.value = tokens.read();
  a.value = tokens.admin();
  document.getElementById('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem('adtracker.read_token', r.value.trim());
    sessionStorage.setItem('adtracker.admin_token', a.value.trim());
    document.querySelector('details.tokens').open = false;
    route();
  });
}

// ---------- API ----------

class ApiError extends Error {
  constructor(status, message, field) { super(message); this.status = status; this.field = field; }
}

// api calls the JSON API. Reads send the read token (or the admin token, which opens reads too); writes send the admin token.
async function api(path, { method = 'GET', body, admin = false, headers = {} } = {}) {
  const hd = { Accept: 'application/json', ...headers };
  const tok = admin ? tokens.admin() : (tokens.read() || tokens.admin());
  if (tok) hd.Authorization = 'Bearer ' + tok;
  if (body !== undefined) hd['Content-Type'] = 'application/json';
  let res;
  for (let attempt = 0; ; attempt++) {
    res = await fetch(path, { method, headers: hd, body: body === undefined ? undefined : JSON.stringify(body) });
    // Rate limited (a remote client past its query burst): wait as told and try again, twice at most.
    if (res.status !== 429 || attempt === 2) break;
    const wait = Math.min(Number(res.headers.get('Retry-After')) || 1, 5);
    await new Promise((r) => setTimeout(r, wait * 1000));
  }
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
  if (!res.ok) {
    let msg = (data && data.error) || res.statusText || 'request failed';
    if (res.status === 401 && !admin) msg += ' — type a read token under "Tokens"';
    throw new ApiError(res.status, msg, data && data.field);
  }
  return { data, res };
}

function showError(err) {
  const box = document.getElementById('alert');
  if (!err) { box.hidden = true; box.textContent = ''; return; }
  box.textContent = (err.status ? err.status + ': ' : '') + err.message + (err.field ? ' (' + err.field + ')' : '');
  box.hidden = false;
}

// allAds pages through GET /ads?status=all (at most 20 pages of 1000).
async function allAds() {
  const ads = [];
  let after = 0;
  for (let i = 0; i < 20; i++) {
    const { data, res } = await api('/ads?status=all&limit=1000&after=' + after);
    ads.push(...data);
    if (!res.headers.get('Link') || data.length === 0) break;
    after = data[data.length - 1].id;
  }
  return ads;
}

// ---------- time window ----------

const HOUR = 3600e3, MINUTE = 60e3;

// currentWindow returns the window the picker names: start/end as Dates (whole minutes or hours, like the rollups) and the
// series interval that keeps a chart readable.
function currentWindow() {
  const sel = document.getElementById('window').value;
  const now = Date.now();
  const nextMinute = Math.floor(now / MINUTE) * MINUTE + MINUTE;
  const nextHour = Math.floor(now / HOUR) * HOUR + HOUR;
  switch (sel) {
    case '1h': return { start: new Date(nextMinute - HOUR), end: new Date(nextMinute), interval: 'minute' };
    case '7d': return { start: new Date(nextHour - 168 * HOUR), end: new Date(nextHour), interval: 'hour' };
    case 'custom': {
      const s = new Date(document.getElementById('custom-start').value);
      const e = new Date(document.getElementById('custom-end').value);
      if (isNaN(s) || isNaN(e) || s >= e) return null;
      const span = e - s;
      return { start: s, end: e, interval: span <= 6 * HOUR ? 'minute' : span <= 31 * 24 * HOUR ? 'hour' : 'day' };
    }
    default: return { start: new Date(nextHour - 24 * HOUR), end: new Date(nextHour), interval: 'hour' };
  }
}

const iso = (d) => d.toISOString().replace('.000Z', 'Z');
const windowQuery = (w) => 'start=' + encodeURIComponent(iso(w.start)) + '&end=' + encodeURIComponent(iso(w.end));

function setupWindow() {
  const sel = document.getElementById('window'), custom = document.getElementById('custom');
  const pad = (n) => String(n).padStart(2, '0');
  const local = (d) => d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' + pad(d.getHours()) + ':' + pad(d.getMinutes());
  sel.addEventListener('change', () => {
    custom.hidden = sel.value !== 'custom';
    if (sel.value === 'custom') {
      const s = document.getElementById('custom-start'), e = document.getElementById('custom-end');
      if (!s.value) s.value = local(new Date(Date.now() - 24 * HOUR));
      if (!e.value) e.value = local(new Date());
      s.focus();
      return;
    }
    route();
  });
  document.getElementById('custom-apply').addEventListener('click', () => {
    if (!currentWindow()) { showError(new ApiError(0, 'the custom window needs a start before its end', 'window')); return; }
    route();
  });
}

// ---------- charts ----------

const SERIES_CLASS = ['s1', 's2', 's3', 's4', 's5'];

// lineChart draws series (each {name, values}) over the bucket times ts as inline SVG, with a legend and a data table for
// screen readers and for anyone who wants the numbers.
function lineChart(id, caption, ts, series, fmt) {
  const W = 800, H = 240, L = 56, R = 12, T = 12, B = 28;
  let max = 0;
  for (const s of series) for (const v of s.values) if (v > max) max = v;
  if (max === 0) max = 1;
  const x = (i) => L + (ts.length <= 1 ? 0 : i * (W - L - R) / (ts.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const label = (t) => {
    const d = new Date(t);
    return ts.length > 1 && new Date(ts[ts.length - 1]) - new Date(ts[0]) > 36 * HOUR
      ? d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }) + ' ' + d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
      : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  };
  const svg = h('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': id + '-title' },
    h('title', { id: id + '-title' }, caption),
    h('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }),
    h('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }),
    h('line', { class: 'axis', x1: L, y1: T, x2: W - R, y2: T, 'stroke-dasharray': '3 3' }),
    h('text', { x: L - 6, y: T + 4, 'text-anchor': 'end' }, fmt(max)),
    h('text', { x: L - 6, y: H - B + 4, 'text-anchor': 'end' }, fmt(0)),
    ts.length ? [0, Math.floor((ts.length - 1) / 2), ts.length - 1].filter((v, i, a) => a.indexOf(v) === i).map((i) =>
      h('text', { x: x(i), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === ts.length - 1 ? 'end' : 'middle' }, label(ts[i]))) : [],
    series.map((s, k) => h('polyline', {
      class: 'line ' + SERIES_CLASS[k % SERIES_CLASS.length], 'data-series': s.name,
      points: s.values.map((v, i) => x(i).toFixed(1) + ',' + y(v).toFixed(1)).join(' '),
    })));
  const legend = h('ul', { class: 'legend' }, series.map((s, k) =>
    h('li', {}, h('span', { class: 'sw ' + SERIES_CLASS[k % SERIES_CLASS.length], 'aria-hidden': 'true' }), s.name)));
  const table = h('table', { id: id + '-data' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Bucket (UTC)'), series.map((s) => h('th', { scope: 'col' }, s.name)))),
    h('tbody', {}, ts.map((t, i) => h('tr', { 'data-t': t }, h('td', {}, t),
      series.map((s) => h('td', { 'data-series': s.name, 'data-value': s.values[i] }, fmt(s.values[i])))))));
  return h('figure', { class: 'card chart', id, 'aria-label': caption }, svg, legend,
    h('details', { class: 'data' }, h('summary', {}, 'Chart data'), h('div', { class: 'table-wrap' }, table)));
}

// ---------- tiles ----------

function tile(key, label, value, fmt) {
  return h('div', { class: 'tile', 'data-tile': key, 'data-value': value },
    h('div', { class: 'label' }, label), h('div', { class: 'value' }, fmt(value)));
}

// figureTiles shows the headline figures; viewability and IVT appear only when the API returns them.
function figureTiles(m) {
  const out = [
    tile('impressions', 'Impressions', m.impressions, fmtInt),
    tile('clicks', 'Clicks', m.clicks, fmtInt),
    tile('ctr', 'CTR', m.ctr, fmtPct),
    tile('completion_rate', 'Completion rate', m.completion_rate, fmtPct),
  ];
  if (typeof m.viewability === 'number') out.push(tile('viewability', 'Viewability', m.viewability, fmtPct));
  if (typeof m.ivt_rate === 'number') out.push(tile('ivt_rate', 'IVT rate', m.ivt_rate, fmtPct));
  return h('div', { class: 'tiles' }, out);
}

// ---------- overview ----------

const COLUMNS = [
  { key: 'impressions', label: 'Impressions', fmt: fmtInt },
  { key: 'clicks', label: 'Clicks', fmt: fmtInt },
  { key: 'ctr', label: 'CTR', fmt: fmtPct },
  { key: 'starts', label: 'Starts', fmt: fmtInt },
  { key: 'completes', label: 'Completes', fmt: fmtInt },
  { key: 'completion_rate', label: 'Completion', fmt: fmtPct },
  { key: 'avg_playback_seconds', label: 'Avg playback (s)', fmt: fmtNum },
];
// The overview chart sums the series of at most this many ads, one request each: with the top list and the catalogue that is 12
// requests a render, inside the default per-client query burst (ratelimit.query.burst 20).
const CHART_ADS = 10;
let topSort = { key: 'clicks', dir: 'desc' };

function sortRows(rows) {
  const { key, dir } = topSort;
  return rows.slice().sort((a, b) => {
    const va = key === 'ad' ? a.name.toLowerCase() : a[key], vb = key === 'ad' ? b.name.toLowerCase() : b[key];
    if (va < vb) return dir === 'asc' ? -1 : 1;
    if (va > vb) return dir === 'asc' ? 1 : -1;
    return a.ad_id - b.ad_id;
  });
}

function topTable(rows) {
  const head = (key, label, cls) => h('th', { scope: 'col', class: cls, 'aria-sort': topSort.key === key ? (topSort.dir === 'asc' ? 'ascending' : 'descending') : 'none' },
    h('button', { type: 'button', 'data-sort': key, onclick: () => {
      topSort = topSort.key === key ? { key, dir: topSort.dir === 'asc' ? 'desc' : 'asc' } : { key, dir: key === 'ad' ? 'asc' : 'desc' };
      const t = topTable(rows);
      document.getElementById('top-ads').replaceWith(t);
      t.querySelector(`button[data-sort="${key}"]`).focus();
    } }, label));
  return h('div', { class: 'table-wrap', id: 'top-ads' }, h('table', {},
    h('caption', { class: 'muted' }, rows.length ? 'Click a heading to sort.' : 'No traffic in this window.'),
    h('thead', {}, h('tr', {}, head('ad', 'Ad', 'text'), COLUMNS.map((c) => head(c.key, c.label)))),
    h('tbody', {}, sortRows(rows).map((r) => h('tr', { 'data-ad': r.ad_id },
      h('td', { class: 'text' }, h('a', { href: '#/ads/' + r.ad_id }, r.name)),
      COLUMNS.map((c) => h('td', { 'data-col': c.key, 'data-value': r[c.key] }, c.fmt(r[c.key]))))))));
}

async function overview(view, w) {
  const q = windowQuery(w);
  const [{ data: top }, ads] = await Promise.all([api('/ads/analytics?limit=1000&' + q), allAds()]);
  const names = new Map(ads.map((a) => [a.id, a.name]));
  const rows = top.map((r) => ({ ...r, name: names.get(r.ad_id) || 'ad ' + r.ad_id }));
  const sum = (k) => rows.reduce((s, r) => s + r[k], 0);
  const totals = { impressions: sum('impressions'), clicks: sum('clicks'), starts: sum('starts'), completes: sum('completes') };
  totals.ctr = totals.impressions ? totals.clicks / totals.impressions : 0;
  totals.completion_rate = totals.starts ? totals.completes / totals.starts : 0;

  // The chart sums the per-ad series of the busiest ads: the API has no all-ads series.
  const busiest = rows.slice().sort((a, b) => (b.impressions + b.starts + b.clicks) - (a.impressions + a.starts + a.clicks) || a.ad_id - b.ad_id).slice(0, CHART_ADS);
  const series = await Promise.all(busiest.map((r) => api(`/ads/${r.ad_id}/timeseries?interval=${w.interval}&fields=impressions,clicks,starts,completes&${q}`).then((x) => x.data)));
  let ts = [];
  const kinds = [['impressions', 'Impressions'], ['clicks', 'Clicks'], ['starts', 'Starts'], ['completes', 'Completes']];
  const sums = kinds.map(([k, name]) => ({ key: k, name, values: [] }));
  if (series.length) {
    ts = series[0].points.map((p) => p.t);
    for (const s of sums) s.values = ts.map(() => 0);
    for (const sr of series) sr.points.forEach((p, i) => { for (const s of sums) s.values[i] += p[s.key]; });
  }
  const notes = [];
  if (rows.length >= 1000) notes.push('The tiles add up the 1000 ads with the most clicks (the API\'s largest top list).');
  if (rows.length > CHART_ADS) notes.push(`The chart sums the ${CHART_ADS} busiest of ${rows.length} ads.`);
  const note = notes.join(' ');
  put(view,
    h('h2', { id: 'overview-h' }, 'Overview'),
    figureTiles(totals),
    h('h2', {}, `Events per ${w.interval} by type`),
    lineChart('events-chart', `Events per ${w.interval} by type`, ts, sums, fmtInt),
    note ? h('p', { class: 'muted' }, note) : null,
    h('h2', {}, 'Top ads'),
    topTable(rows));
}

// ---------- ad page ----------

async function adPage(view, w, id) {
  const q = windowQuery(w);
  const [{ data: ad }, { data: st }, { data: ser }] = await Promise.all([
    api('/ads/' + id), api('/ads/analytics?ad_id=' + id + '&' + q),
    api(`/ads/${id}/timeseries?interval=${w.interval}&${q}`)]);
  const ts = ser.points.map((p) => p.t);
  const steps = [['starts', 'Start'], ['first_quartile', 'First quartile'], ['midpoint', 'Midpoint'], ['third_quartile', 'Third quartile'], ['completes', 'Complete']];
  const top = st.starts || 1;
  put(view,
    h('p', {}, h('a', { href: '#/' }, '← Overview')),
    h('h2', { id: 'ad-h' }, ad.name),
    h('dl', { class: 'meta' }, h('dt', {}, 'Ad'), h('dd', {}, '#' + ad.id), h('dt', {}, 'Status'), h('dd', { 'data-status': ad.status }, ad.status),
      h('dt', {}, 'Duration'), h('dd', {}, ad.duration_seconds + ' s'), h('dt', {}, 'Target'), h('dd', {}, h('a', { href: ad.target_url, rel: 'noopener noreferrer' }, ad.target_url))),
    figureTiles(st),
    h('h2', {}, `Impressions and clicks per ${w.interval}`),
    lineChart('ad-counts', `Impressions and clicks per ${w.interval}`, ts,
      [{ name: 'Impressions', values: ser.points.map((p) => p.impressions) }, { name: 'Clicks', values: ser.points.map((p) => p.clicks) }], fmtInt),
    h('h2', {}, `CTR per ${w.interval}`),
    lineChart('ad-ctr', `CTR per ${w.interval}`, ts, [{ name: 'CTR', values: ser.points.map((p) => p.ctr) }], fmtPct),
    h('h2', {}, 'Quartile funnel'),
    h('div', { class: 'card funnel', id: 'funnel', role: 'list' }, steps.map(([k, label]) => {
      const bar = h('div', { class: 'bar', 'aria-hidden': 'true' });
      bar.style.width = (100 * st[k] / top).toFixed(1) + '%';
      return h('div', { class: 'row', role: 'listitem', 'data-step': k, 'data-value': st[k] },
        h('span', {}, label), h('div', {}, bar), h('span', { class: 'num' }, fmtInt(st[k]) + (st.starts ? ' (' + fmtPct(st[k] / st.starts) + ')' : '')));
    })));
}

// ---------- live ingest ----------

let liveTimer = 0;

async function livePage(view) {
  const { data: s } = await api('/status');
  const fill = h('div', { class: 'tiles' },
    tile('accepted_per_second', 'Accepted events/s', s.accepted_per_second, fmtNum),
    tile('inserted_per_second', 'Stored rows/s', s.inserted_per_second, fmtNum),
    tile('ring_fill', 'Ring fill', s.ring.fill, fmtPct),
    tile('spill_bytes', 'Spill', s.spill.bytes, fmtBytes));
  const ch = h('p', {}, 'ClickHouse: ', h('span', { id: 'ch-state', class: 'state-' + s.clickhouse.state, 'data-ch': s.clickhouse.state }, s.clickhouse.state),
    ' · last insert seen: ', s.last_insert_at ? new Date(s.last_insert_at).toLocaleString() : 'none since this server started',
    ' · accepted since start: ', fmtInt(s.accepted_total), ' · spill segments: ', fmtInt(s.spill.segments),
    ' · ring: ', fmtInt(s.ring.used_slots), ' of ', fmtInt(s.ring.capacity_slots), ' slots');
  put(view, h('h2', {}, 'Live ingest'), h('p', { class: 'muted' }, 'Refreshed every 3 seconds from GET /status.'), fill, ch);
}

// ---------- catalogue ----------

async function cataloguePage(view) {
  const ads = await allAds();
  const admin = !!tokens.admin();
  const act = async (fn) => {
    try { await fn(); showError(null); route(); } catch (e) { showError(e); }
  };
  const ifMatch = (a) => ({ 'If-Match': '"' + a.version + '"' });
  const rows = ads.map((a) => h('tr', { 'data-ad': a.id },
    h('td', {}, String(a.id)), h('td', { class: 'text' }, h('a', { href: '#/ads/' + a.id }, a.name)),
    h('td', { class: 'text', 'data-status': a.status }, a.status), h('td', {}, a.duration_seconds + ' s'),
    h('td', { class: 'text' }, a.target_url),
    h('td', {}, h('div', { class: 'actions' },
      a.status !== 'archived' ? h('button', { type: 'button', disabled: !admin, 'aria-label': (a.status === 'paused' ? 'Resume ' : 'Pause ') + a.name,
        onclick: () => act(() => api('/ads/' + a.id, { method: 'PATCH', admin: true, headers: ifMatch(a), body: { status: a.status === 'paused' ? 'active' : 'paused' } })) },
      a.status === 'paused' ? 'Resume' : 'Pause') : null,
      a.status !== 'archived' ? h('button', { type: 'button', disabled: !admin, 'aria-label': 'Archive ' + a.name,
        onclick: () => { if (confirm('Archive "' + a.name + '"? Its events will be refused.')) act(() => api('/ads/' + a.id, { method: 'DELETE', admin: true, headers: ifMatch(a) })); } },
      'Archive') : null))));
  const field = (id, label, type, attrs) => h('label', { for: id }, label, h('input', { id, name: id, type, ...attrs }));
  const form = h('form', { class: 'create card', 'aria-label': 'Create an ad' },
    field('new-name', 'Name', 'text', { required: true, maxlength: 200 }),
    field('new-target', 'Target URL', 'url', { required: true, placeholder: 'https://' }),
    field('new-video', 'Video URL (optional)', 'url', {}),
    field('new-duration', 'Duration (s)', 'number', { min: 1, max: 3600, value: 30 }),
    h('button', { type: 'submit', disabled: !admin }, 'Create ad'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = (id) => document.getElementById(id).value.trim();
    act(() => api('/ads', { method: 'POST', admin: true, body: { name: v('new-name'), target_url: v('new-target'), video_url: v('new-video'), duration_seconds: Number(v('new-duration')) || 30 } }));
  });
  put(view,
    h('h2', {}, 'Catalogue'),
    admin ? null : h('p', { class: 'muted', id: 'admin-hint' }, 'Type the admin token under "Tokens" to create, pause and archive ads.'),
    form,
    h('h2', {}, `${ads.length} ads`),
    h('div', { class: 'table-wrap' }, h('table', { id: 'catalogue' },
      h('thead', {}, h('tr', {}, ['Id', 'Name', 'Status', 'Duration', 'Target', 'Actions'].map((c, i) => h('th', { scope: 'col', class: i === 1 || i === 2 || i === 4 ? 'text' : null }, c)))),
      h('tbody', {}, rows))));
}

// ---------- routing ----------

let renderSeq = 0;

// route renders the page the hash names. A newer render makes an older one's late answers land nowhere.
async function route() {
  const seq = ++renderSeq;
  clearInterval(liveTimer);
  const hash = location.hash || '#/';
  const view = document.getElementById('view');
  const adMatch = /^#\/ads\/(\d+)$/.exec(hash);
  const page = adMatch ? 'ad' : hash === '#/live' ? 'live' : hash === '#/ads' ? 'catalogue' : 'overview';
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.nav === page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const bar = document.getElementById('window-bar');
  bar.hidden = !(page === 'overview' || page === 'ad');
  const w = currentWindow();
  if (w) document.getElementById('window-text').textContent = iso(w.start) + ' – ' + iso(w.end) + ' (UTC)';
  document.body.dataset.page = page;
  document.body.dataset.state = 'loading';
  const box = h('div', {});
  try {
    if (page === 'overview') await overview(box, w);
    else if (page === 'ad') await adPage(box, w, adMatch[1]);
    else if (page === 'catalogue') await cataloguePage(box);
    else {
      await livePage(box);
      liveTimer = setInterval(() => {
        const fresh = h('div', {});
        livePage(fresh).then(() => { if (seq === renderSeq) { view.replaceChildren(...fresh.childNodes); showError(null); } })
          .catch((e) => { if (seq === renderSeq) showError(e); });
      }, 3000);
    }
    if (seq !== renderSeq) return;
    if (w) { view.dataset.start = iso(w.start); view.dataset.end = iso(w.end); view.dataset.interval = w.interval; }
    view.replaceChildren(...box.childNodes);
    showError(null);
    document.body.dataset.state = 'ready';
    document.body.dataset.render = String(seq); // tests wait for a render newer than the one they saw
  } catch (e) {
    if (seq !== renderSeq) return;
    view.replaceChildren();
    showError(e);
    document.body.dataset.state = 'error';
    document.body.dataset.render = String(seq);
  }
}

setupTokens();
setupWindow();
window.addEventListener('hashchange', () => { route(); document.getElementById('main').focus(); });
route();
