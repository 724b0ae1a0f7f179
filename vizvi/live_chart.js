// Browser side of vizvi.live_chart (see live_chart.py).
//
// Served by the app as /app/static/vizvi/live_chart-<hash>.js and imported once per page by
// the tiny components-v2 stub in live_chart.py, so this code is not resent with every update.
// Streamlit calls the stub with the element's new data whenever it changes; the element's
// panel (its charts and their arrangement) is found by the element's parent node, which
// stays the same for as long as Streamlit keeps the element mounted.
//
// Streamlit sometimes unmounts an element and mounts a fresh one ~50-150 ms later (seen when
// a button's full-app rerun meets a running st.fragment). Each chart is also kept by its
// key and the new element adopts the old graph (moved, not redrawn), so user zoom and the
// drawn figure survive; only an unmounted graph that nobody adopts is disposed of, later.

const BY_PARENT = new WeakMap();
const BY_KEY = new Map();
const DISPOSE_AFTER_MS = 5000;
const DECODER = new TextDecoder();

const CSS = `
.vizvi-live-panel { display: flex; flex-direction: column; gap: 1rem; width: 100%; }
.vizvi-band { display: flex; flex-wrap: wrap; gap: 1rem; width: 100%; }
.vizvi-column { flex: 1 1 0; min-width: min(100%, 22rem); display: flex; flex-direction: column; gap: 1rem; }
.vizvi-live-chart { position: relative; width: 100%; }
.vizvi-live-chart .vizvi-plot { width: 100%; height: 100%; }
.vizvi-live-chart .vizvi-msg:empty { display: none; }
.vizvi-live-chart .vizvi-msg {
  position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
  color: var(--st-red-color, #c00); font-size: 0.9rem;
}`;

function ensureCss() {
  if (document.getElementById("vizvi-live-chart-css")) return;
  const style = document.createElement("style");
  style.id = "vizvi-live-chart-css";
  style.textContent = CSS;
  document.head.appendChild(style);
}

// One <script> tag per page, shared by every chart; plotly.js (UMD) sets window.Plotly.
function loadPlotly(src) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__vizviPlotly) {
    window.__vizviPlotly = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = src;
      s.async = true;
      s.onload = () => (window.Plotly ? resolve(window.Plotly)
        : reject(new Error("plotly.js loaded but window.Plotly is missing")));
      s.onerror = () => {
        window.__vizviPlotly = null; // let the next update retry
        s.remove();
        reject(new Error("could not load plotly.js from " + src));
      };
      document.head.appendChild(s);
    });
  }
  return window.__vizviPlotly;
}

// Typed-array specs ({dtype, bdata[, shape]}) become real arrays here, so the graph div's
// .data holds plain arrays that callers (and tests) can read; plotly.js draws them as-is.
const TYPED = {
  f8: Float64Array, f4: Float32Array, i1: Int8Array, i2: Int16Array,
  i4: Int32Array, u1: Uint8Array, u2: Uint16Array, u4: Uint32Array,
};
function decodeArrays(v) {
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = decodeArrays(v[i]);
  } else if (v && typeof v === "object") {
    if (typeof v.bdata === "string" && TYPED[v.dtype]) {
      const bin = atob(v.bdata);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      const flat = new TYPED[v.dtype](bytes.buffer);
      if (v.shape === undefined) return flat;
      // A 2-D spec ("rows,columns", e.g. a contour's z) becomes an array of Float64Array
      // rows: plotly.js's contour ran ~18x slower on its own decoding of the same spec
      // (measured: 190 ms against 11 ms per update for two 60x60 contours), and typed rows,
      // unlike plain ones, are leaves that Plotly.react's diff does not walk value by value.
      const [rows, cols] = String(v.shape).split(",").map(Number);
      return Array.from({ length: rows }, (_, r) => Float64Array.from(flat.subarray(r * cols, (r + 1) * cols)));
    }
    for (const k of Object.keys(v)) v[k] = decodeArrays(v[k]);
  }
  return v;
}

function sameBytes(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// A panel is one Streamlit element holding several charts: bands (rows) of columns of
// stacked charts. One element per panel means one Streamlit delta, so one React pass, per
// update for all its charts, instead of one per chart.
function panelFor(parent) {
  let p = BY_PARENT.get(parent);
  if (p) return p;
  ensureCss();
  const root = document.createElement("div");
  root.className = "vizvi-live-panel";
  parent.appendChild(root);
  p = { parent, root, layout: null, charts: new Map(), stamp: null, stampFeed: undefined };
  BY_PARENT.set(parent, p);
  return p;
}

// (Re)build the bands and columns when the arrangement changes; chart hosts are moved into
// place (a DOM move keeps a Plotly graph as drawn), not recreated.
function arrange(p, bands) {
  const layout = JSON.stringify(bands);
  if (p.layout === layout) return;
  p.layout = layout;
  const frag = document.createDocumentFragment();
  for (const band of bands) {
    const row = document.createElement("div");
    row.className = "vizvi-band";
    for (const column of band) {
      const col = document.createElement("div");
      col.className = "vizvi-column";
      for (const key of column) col.appendChild(chartFor(p, key).host);
      row.appendChild(col);
    }
    frag.appendChild(row);
  }
  p.root.replaceChildren(frag);
}

function chartFor(p, key) {
  let c = p.charts.get(key);
  if (c) return c;
  c = BY_KEY.get(key);
  if (c && !c.host.isConnected) {
    // Adopt the graph of an element Streamlit has just unmounted (see top of file).
    c.mounts += 1;
    c.host.setAttribute("data-mounts", String(c.mounts));
    c.panel = p;
    p.charts.set(key, c);
    return c;
  }
  const host = document.createElement("div");
  host.className = "vizvi-live-chart";
  host.setAttribute("data-vizvi-chart", key);
  host.setAttribute("data-updates", "0");
  host.setAttribute("data-mounts", "1");
  const plot = document.createElement("div");
  plot.className = "vizvi-plot";
  const msg = document.createElement("div");
  msg.className = "vizvi-msg";
  host.append(plot, msg);
  c = { key, panel: p, host, plot, msg, pending: null, busy: false, lastBytes: null,
        updates: 0, received: 0, mounts: 1, ro: null, frame: 0 };
  // Streamlit layout changes (sidebar, column resize) fire no window resize: watch the box.
  c.ro = new ResizeObserver(() => {
    if (c.frame || !window.Plotly || !c.updates) return;
    c.frame = requestAnimationFrame(() => {
      c.frame = 0;
      // A plot that is not displayed (its box hidden while Streamlit redraws the page) has no
      // size to fit, and Plotly rejects the call; the observer fires again when it is shown.
      if (!c.plot.isConnected || c.plot.offsetParent === null) return;
      const resized = window.Plotly.Plots.resize(c.plot);
      if (resized && resized.catch) resized.catch(() => {});
    });
  });
  c.ro.observe(host);
  p.charts.set(key, c);
  // A key shown twice at once (e.g. on two pages' leftovers) keeps the newest for adoption.
  BY_KEY.set(key, c);
  return c;
}

function dispose(c) {
  WAITING.delete(c);
  c.pending = null;
  settleDrawnWaiters();  // a feed waiting for this chart to be drawn goes on
  c.ro.disconnect();
  if (window.Plotly) window.Plotly.purge(c.plot);
  c.host.remove();
  if (BY_KEY.get(c.key) === c) BY_KEY.delete(c.key);
}

function themed(layout, c) {
  const out = Object.assign({}, layout);
  // getComputedStyle forces a style recalculation; read the theme once per chart, not per
  // update (several updates a second, five charts).
  if (!c.theme) {
    const css = getComputedStyle(c.host);
    c.theme = { bg: css.getPropertyValue("--st-background-color").trim(),
                fg: css.getPropertyValue("--st-text-color").trim() };
  }
  const { bg, fg } = c.theme;
  // Blend into the Streamlit theme unless the figure chose colours itself; a solid colour
  // (not transparent) keeps the toolbar's PNG download readable.
  if (out.paper_bgcolor === undefined && bg) out.paper_bgcolor = bg;
  if (fg && !(out.font && out.font.color)) out.font = Object.assign({}, out.font, { color: fg });
  return out;
}

// Charts with a figure waiting to be drawn, in the order their figures arrived (a payload's
// order: the ELBO first). One loop draws them, one chart per task: between two charts the
// browser may paint and handle input. Drawn in one go, the six charts of an update are one
// 100-200 ms task, during which nothing is painted: a run's first update (plotly.js's code
// still cold in a fresh page) showed its ELBO only when the last chart was done.
const WAITING = new Set();
let drawing = false;

// A task boundary: scheduler.yield() where the browser has it (Chromium), else a message
// (a zero setTimeout in a loop is clamped to 4 ms).
function yieldToBrowser() {
  if (globalThis.scheduler && typeof scheduler.yield === "function") return scheduler.yield();
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(0);
  });
}

// Apply only the newest figure; figures that arrive while a chart waits replace the one it
// holds, so a slow browser drops intermediate frames instead of building a backlog.
function queueDraw(c, figure) {
  c.pending = figure;
  WAITING.add(c);  // a chart already waiting keeps its place
  drawWaiting();
}

// A page in a background tab (or a minimised window) draws nothing: its charts keep their
// newest figure and draw it when the page is shown again. Its feeds wait meanwhile (each waits
// for its panel to be drawn before asking for more), so a class's hidden tabs cost the server
// no updates and their laptops no drawing.
const pageShown = () => document.visibilityState !== "hidden";
document.addEventListener("visibilitychange", () => {
  if (pageShown()) drawWaiting();
});

async function drawWaiting() {
  if (drawing) return;
  drawing = true;
  try {
    while (WAITING.size && pageShown()) {
      const c = WAITING.values().next().value;
      WAITING.delete(c);
      await draw(c);
      settleDrawnWaiters();
      await yieldToBrowser();
    }
  } finally {
    drawing = false;
  }
}

// Feeds waiting for their panel to be drawn (see `drawn`).
const DRAWN_WAITERS = [];

// Resolves once no chart of panel `p` has a figure waiting or being drawn.
function drawn(p) {
  if (idle(p)) return Promise.resolve();
  return new Promise((resolve) => DRAWN_WAITERS.push({ p, resolve }));
}

function settleDrawnWaiters() {
  for (let i = DRAWN_WAITERS.length - 1; i >= 0; i--) {
    if (idle(DRAWN_WAITERS[i].p)) DRAWN_WAITERS.splice(i, 1)[0].resolve();
  }
}

async function draw(c) {
  const { plotly, body } = c.pending;
  c.pending = null;
  c.busy = true;
  try {
    const Plotly = await loadPlotly(plotly);
    const fig = JSON.parse(DECODER.decode(body));
    const config = Object.assign(
      { displaylogo: false, toImageButtonOptions: { filename: c.key } },
      fig.config || {});
    await Plotly.react(c.plot, decodeArrays(fig.data || []), themed(fig.layout || {}, c), config);
    c.updates += 1;
    c.host.setAttribute("data-updates", String(c.updates));
    c.msg.textContent = "";
  } catch (err) {
    console.error("vizvi live_chart:", err);
    c.msg.textContent = "Chart error: " + (err && err.message ? err.message : err);
  } finally {
    c.busy = false;
  }
}

// Stamps are "revision.step": which view (revised when the page's view settings change) and
// which state of the run a payload shows. Payloads reach a panel by two ways (Streamlit's
// reruns and the feed), so one may overtake another: an older one is not drawn.
function stampOf(text) {
  if (typeof text !== "string") return null;
  const parts = text.split(".").map(Number);
  return parts.length === 2 && parts.every(Number.isFinite) ? parts : null;
}
function older(a, b) {
  return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
}

// Draw a payload's figures (`body`: one figure JSON per line, in `head.charts` order) that
// came from `feed` (its URL; the same run and page) or through Streamlit naming it. Stamps
// compare within one feed only: a new run has a new feed, and starts again at step 0.
function apply(p, head, body, feed) {
  const stamp = stampOf(head.stamp);
  if (feed !== p.stampFeed) {
    p.stampFeed = feed;
    p.stamp = null;
  }
  if (stamp && p.stamp && older(stamp, p.stamp)) return;
  p.stamp = stamp;
  arrange(p, head.bands);
  let start = 0;
  for (const spec of head.charts) {
    let end = body.indexOf(10, start);
    if (end < 0) end = body.length;
    const line = body.subarray(start, end);
    start = end + 1;
    const c = chartFor(p, spec.key);
    c.host.style.height = spec.height + "px";
    // Unchanged figures (a full-app rerun resends every chart) skip the redundant Plotly.react.
    if (!sameBytes(c.lastBytes, line)) {
      c.lastBytes = line;
      // New figures that reached the chart, drawn or overtaken by a newer one before it was
      // (data-updates counts the drawn): what the server delivered (bench/load.py).
      c.received += 1;
      c.host.setAttribute("data-received", String(c.received));
      queueDraw(c, { plotly: head.plotly, body: line });
    }
  }
}

// The feed (vizvi/live_feed.py): the panel asks the server for its next update itself, at most
// every FEED_PERIOD_MS and never faster than it draws, instead of waiting for Streamlit to
// rerun a fragment; the server answers when there is something new (204 after a second
// without). The next request goes out as soon as an update arrives, while it is drawn. One loop per feed URL; it follows the newest panel showing it and ends when the
// feed is gone (404: a new run, or the session closed) or no page element shows it any more.
const FEEDS = new Map();
const FEED_PERIOD_MS = 70;
const FEED_RETRY_MS = 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function idle(p) {
  for (const c of p.charts.values()) if (c.busy || c.pending) return false;
  return true;
}

function request(f, stamp) {
  const url = f.url + "?after=" + encodeURIComponent(stamp ? stamp.join(".") : "");
  f.requests += 1;
  f.panel.root.setAttribute("data-feed-requests", String(f.requests));
  // A failed request (the server restarting, say: Streamlit reconnects too) resolves to null.
  return fetch(url, { cache: "no-store" }).catch(() => null);
}

function follow(p, head) {
  for (const [url, f] of FEEDS) if (f.panel === p && url !== head.feed) f.stopped = true;
  if (!head.feed) return;
  const known = FEEDS.get(head.feed);
  if (known && !known.stopped) {
    known.panel = p;
    return;
  }
  const f = { url: head.feed, panel: p, stopped: false, requests: 0 };
  FEEDS.set(head.feed, f);
  (async () => {
    let gone = 0;
    let next = request(f, p.stamp);
    while (!f.stopped) {
      if (!f.panel.root.isConnected) {  // unmounted: wait for a new element to adopt the feed
        if ((gone += 1) * FEED_PERIOD_MS > DISPOSE_AFTER_MS) break;
        await sleep(FEED_PERIOD_MS);
        continue;
      }
      gone = 0;
      const t0 = performance.now();
      const res = await next;
      if (f.stopped) break;
      if (res && res.status === 404) break;
      if (res && res.status === 200) {
        const data = new Uint8Array(await res.arrayBuffer());
        const nl = data.indexOf(10);
        const head = nl > 0 ? JSON.parse(DECODER.decode(data.subarray(0, nl))) : null;
        // Ask for the one after it now, so that the server builds it while this one is drawn.
        next = request(f, head ? stampOf(head.stamp) : f.panel.stamp);
        if (head && !f.stopped) apply(f.panel, head, data.subarray(nl + 1), f.url);
        await drawn(f.panel);  // drawn before the next is applied: no backlog
      } else {
        if (!res || res.status !== 204) await sleep(FEED_RETRY_MS);
        next = request(f, f.panel.stamp);
      }
      const left = FEED_PERIOD_MS - (performance.now() - t0);
      if (left > 0) await sleep(left);
    }
    f.stopped = true;
    if (FEEDS.get(f.url) === f) FEEDS.delete(f.url);
  })();
}

// `data` is the whole payload; `body` holds one figure JSON per line, in `head.charts` order.
export function render(parentElement, head, data, body) {
  const p = panelFor(parentElement);
  apply(p, head, body, head.feed);
  follow(p, head);
  // Streamlit may call this cleanup while the element is still mounted (an update that was
  // superseded mid-load), and a remounted element may adopt the graphs: dispose of a chart
  // only if it is still unmounted and unadopted a while later.
  return () => setTimeout(() => {
    if (parentElement.isConnected) return;
    setTimeout(() => {
      for (const c of p.charts.values()) if (!c.host.isConnected) dispose(c);
    }, DISPOSE_AFTER_MS);
  }, 0);
}
