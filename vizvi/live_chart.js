// Browser side of vizvi.live_chart (see live_chart.py).
//
// Served by the app as /app/static/vizvi/live_chart-<hash>.js and imported once per page by
// the tiny components-v2 stub in live_chart.py, so this code is not resent with every update.
// Streamlit calls the stub with the element's new data whenever it changes; per-chart state
// is found by the element's parent node, which stays the same for as long as Streamlit keeps
// the element mounted.
//
// Streamlit sometimes unmounts an element and mounts a fresh one ~50-150 ms later (seen when
// a button's full-app rerun meets a running st.fragment). The chart is then also kept by
// key and the new element adopts the old graph (moved, not redrawn), so user zoom and the
// drawn figure survive; only an unmounted graph that nobody adopts is disposed of, later.

const BY_PARENT = new WeakMap();
const BY_KEY = new Map();
const DISPOSE_AFTER_MS = 5000;
const DECODER = new TextDecoder();

const CSS = `
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

// Typed-array specs ({dtype, bdata}) become real typed arrays here, so the graph div's
// .data holds plain arrays that callers (and tests) can read; plotly.js draws them as-is.
const TYPED = {
  f8: Float64Array, f4: Float32Array, i1: Int8Array, i2: Int16Array,
  i4: Int32Array, u1: Uint8Array, u2: Uint16Array, u4: Uint32Array,
};
function decodeArrays(v) {
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = decodeArrays(v[i]);
  } else if (v && typeof v === "object") {
    if (typeof v.bdata === "string" && TYPED[v.dtype] && v.shape === undefined) {
      const bin = atob(v.bdata);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      return new TYPED[v.dtype](bytes.buffer);
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

function chartFor(parent, key) {
  let c = BY_PARENT.get(parent);
  if (c) return c;
  c = BY_KEY.get(key);
  if (c && !c.parent.isConnected) {
    // Adopt the graph of an element Streamlit has just unmounted (see top of file).
    parent.appendChild(c.host);
    c.parent = parent;
    c.mounts += 1;
    c.host.setAttribute("data-mounts", String(c.mounts));
    BY_PARENT.set(parent, c);
    return c;
  }
  ensureCss();
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
  parent.appendChild(host);
  c = { key, parent, host, plot, msg, pending: null, busy: false, lastBytes: null,
        updates: 0, mounts: 1, ro: null, frame: 0 };
  // Streamlit layout changes (sidebar, column resize) fire no window resize: watch the box.
  c.ro = new ResizeObserver(() => {
    if (c.frame || !window.Plotly || !c.updates) return;
    c.frame = requestAnimationFrame(() => {
      c.frame = 0;
      window.Plotly.Plots.resize(c.plot);
    });
  });
  c.ro.observe(host);
  BY_PARENT.set(parent, c);
  // A key shown twice at once (e.g. on two pages' leftovers) keeps the newest for adoption.
  BY_KEY.set(key, c);
  return c;
}

function dispose(c) {
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

// Apply only the newest figure; updates that arrive while Plotly is drawing are coalesced,
// so a slow browser drops intermediate frames instead of building a backlog.
async function pump(c) {
  if (c.busy) return;
  c.busy = true;
  try {
    while (c.pending) {
      const { head, body } = c.pending;
      c.pending = null;
      const Plotly = await loadPlotly(head.plotly);
      const fig = JSON.parse(DECODER.decode(body));
      const config = Object.assign(
        { displaylogo: false, toImageButtonOptions: { filename: head.key } },
        fig.config || {});
      await Plotly.react(c.plot, decodeArrays(fig.data || []), themed(fig.layout || {}, c), config);
      c.updates += 1;
      c.host.setAttribute("data-updates", String(c.updates));
      c.msg.textContent = "";
    }
  } catch (err) {
    console.error("vizvi live_chart:", err);
    c.msg.textContent = "Chart error: " + (err && err.message ? err.message : err);
  } finally {
    c.busy = false;
  }
}

// `data` is the whole payload (header line + figure JSON), `body` the figure JSON part.
export function render(parentElement, head, data, body) {
  const c = chartFor(parentElement, head.key);
  // A full-app rerun resends the same bytes: skip the redundant Plotly.react.
  if (!sameBytes(c.lastBytes, data)) {
    c.lastBytes = data;
    c.host.style.height = head.height + "px";
    c.pending = { head, body };
    pump(c);
  }
  // Streamlit may call this cleanup while the element is still mounted (an update that was
  // superseded mid-load), and a remounted element may adopt the graph: dispose of it only
  // if it is still unmounted and unadopted a while later.
  return () => setTimeout(() => {
    if (parentElement.isConnected || c.parent !== parentElement) return;
    setTimeout(() => { if (!c.parent.isConnected) dispose(c); }, DISPOSE_AFTER_MS);
  }, 0);
}
