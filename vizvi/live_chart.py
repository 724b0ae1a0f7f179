"""A flicker-free live Plotly chart for Streamlit.

``st.plotly_chart`` called from an ``st.fragment(run_every=...)`` remounts the chart on every
rerun: at 10 updates/s four charts were all visible in only ~73% of 20 ms samples and updated
3.5x/s. :func:`live_chart` instead renders a Streamlit components-v2 element that stays
mounted across reruns (same ``key``) and hands each new figure to ``Plotly.react``, which
diffs it into the one graph it keeps, so the chart never disappears and user zoom survives.
:func:`live_charts` puts several such graphs in one element, so an update is one delta.

plotly.js is served by the app itself (the machine the dashboard runs on may have no
internet): the copy bundled with the installed ``plotly`` package, and the chart renderer
``live_chart.js`` next to this file, are copied (once per process, only when missing or
stale) to ``<entry-script dir>/static/vizvi/`` and fetched from Streamlit's app static route
``/app/static/vizvi/...``. That route exists only with ``[server] enableStaticServing =
true``. The generated folder carries its own ``.gitignore`` so it never gets committed.

This is, with ``ui.py``, the only vizvi module that imports streamlit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import plotly
import plotly.io as pio
import streamlit as st
from plotly.basedatatypes import BaseFigure
from streamlit import config as st_config
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

__all__ = ["live_chart", "live_charts", "encode_panel", "app_path", "LiveChartConfigError", "asset_urls", "ensure_assets"]

FigureLike = Union[BaseFigure, Mapping[str, Any]]

# Folder under the app's ``static`` directory that this module owns and regenerates.
_STATIC_SUBDIR = "vizvi"
# The plotly.js version in the file name busts browser caches when the plotly package changes.
_PLOTLY_JS_NAME = f"plotly-{plotly.__version__}.min.js"
_KEY_PREFIX = "vizvi-live-chart-"


class LiveChartConfigError(RuntimeError):
    """The app is not configured so that plotly.js can be served to the browser."""


# --------------------------------------------------------------------------------------------
# Frontend. A components-v2 element resends its js/css with every update, so the element's own
# JS is only this stub (~0.6 kB); the renderer (live_chart.js) and plotly.js are static files,
# each fetched once per page. The payload is one JSON header line (names, URLs, height)
# followed by the figure JSON, so the stub reads the header without parsing the figure.
# --------------------------------------------------------------------------------------------
_STUB_JS = r"""
const MODS = new Map();
export default async function ({ data, parentElement }) {
  if (!(data instanceof Uint8Array)) return () => {};
  const nl = data.indexOf(10);
  const head = JSON.parse(new TextDecoder().decode(data.subarray(0, nl)));
  // Absolute URL: this stub runs from a blob: URL, against which paths do not resolve.
  const url = new URL(head.module, document.baseURI).href;
  if (!MODS.has(url)) MODS.set(url, import(url));
  try {
    const mod = await MODS.get(url);
    return mod.render(parentElement, head, data, data.subarray(nl + 1));
  } catch (err) {
    MODS.delete(url);
    console.error("vizvi live_chart: cannot load " + url, err);
    parentElement.textContent = "vizvi live_chart: cannot load " + url;
    return () => {};
  }
}
"""

# isolate_styles=False: plotly.js injects its modebar/hover CSS into document.head, which would
# not reach a graph inside a shadow root.
_component = st.components.v2.component("vizvi_live_chart", js=_STUB_JS, isolate_styles=False)

_RENDERER_SOURCE = Path(__file__).with_name("live_chart.js")
_assets_lock = threading.Lock()
_assets_done: dict[str, tuple[str, str]] = {}


def _write_atomically(target: Path, content: bytes | Path) -> None:
    """Write (or copy) to ``target`` via a temp file, so a browser never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".vizvi-", suffix=".tmp")
    os.close(fd)
    try:
        if isinstance(content, Path):
            shutil.copyfile(content, tmp)
        else:
            Path(tmp).write_bytes(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def ensure_assets(static_dir: str | os.PathLike[str]) -> tuple[str, str]:
    """Put plotly.js and the chart renderer into ``static_dir/vizvi/``; return their names.

    plotly.js is copied from the installed ``plotly`` package (named after its version) and
    the renderer from ``live_chart.js`` (named after a hash of its content), so a browser
    never runs a stale cached copy. Files are (re)written only when missing or different,
    once per process, and a ``.gitignore`` makes git ignore the whole generated folder.
    """
    folder = Path(static_dir) / _STATIC_SUBDIR
    with _assets_lock:
        done = _assets_done.get(str(folder))
        if done:
            return done
        folder.mkdir(parents=True, exist_ok=True)
        ignore = folder / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# Generated by vizvi.live_chart when an app starts.\n*\n")
        plotly_src = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        plotly_dst = folder / _PLOTLY_JS_NAME
        if not plotly_dst.exists() or plotly_dst.stat().st_size != plotly_src.stat().st_size:
            _write_atomically(plotly_dst, plotly_src)
        renderer = _RENDERER_SOURCE.read_bytes()
        renderer_dst = folder / f"live_chart-{hashlib.sha256(renderer).hexdigest()[:12]}.js"
        if not renderer_dst.exists() or renderer_dst.read_bytes() != renderer:
            _write_atomically(renderer_dst, renderer)
        done = (plotly_dst.name, renderer_dst.name)
        _assets_done[str(folder)] = done
        return done


def asset_urls() -> tuple[str, str]:
    """Return the URL paths of plotly.js and the renderer, generating the files if needed.

    Must run inside a Streamlit script run. Raises :class:`LiveChartConfigError` when
    ``server.enableStaticServing`` is off, because the browser could then load neither file
    (and the machine may have no internet to fall back on).
    """
    if not st_config.get_option("server.enableStaticServing"):
        raise LiveChartConfigError(
            "vizvi.live_chart needs Streamlit static file serving to deliver plotly.js: set "
            "`[server] enableStaticServing = true` in .streamlit/config.toml (or pass "
            "`--server.enableStaticServing true`)."
        )
    ctx = get_script_run_ctx()
    if ctx is None:
        raise LiveChartConfigError("live_chart must be called from a running Streamlit script.")
    # Streamlit serves <directory of the entry-point script>/static under /app/static/.
    names = ensure_assets(Path(ctx.main_script_path).resolve().parent / "static")
    base = (st_config.get_option("server.baseUrlPath") or "").strip("/")
    prefix = f"/{base}" if base else ""
    plotly_name, renderer_name = (f"{prefix}/app/static/{_STATIC_SUBDIR}/{n}" for n in names)
    return plotly_name, renderer_name


def _typed_arrays(obj: Any) -> Any:
    """Replace numeric 1-D and 2-D numpy arrays by plotly.js typed-array specs (base64).

    A float64 point costs ~10.7 bytes this way instead of ~19 as decimal JSON, which matters
    when a growing figure is resent several times a second. Other values are left for
    plotly's JSON encoder. ``range`` keys stay plain lists, as plotly.js expects.
    """
    if isinstance(obj, np.ndarray):
        if obj.ndim in (1, 2) and obj.size and obj.dtype.kind in "fiu":
            arr = obj
            if arr.dtype.kind == "i" and arr.dtype.itemsize == 8:
                # plotly.js has no 64-bit integer arrays.
                info = np.iinfo(np.int32)
                arr = arr.astype(np.int32) if info.min <= arr.min() and arr.max() <= info.max \
                    else arr.astype(np.float64)
            elif arr.dtype.kind == "u" and arr.dtype.itemsize == 8:
                arr = arr.astype(np.uint32) if arr.max() <= np.iinfo(np.uint32).max \
                    else arr.astype(np.float64)
            elif arr.dtype.kind == "f" and arr.dtype.itemsize not in (4, 8):
                arr = arr.astype(np.float64)
            arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
            spec = {"dtype": f"{arr.dtype.kind}{arr.dtype.itemsize}",
                    "bdata": base64.b64encode(arr.tobytes()).decode("ascii")}
            if arr.ndim == 2:
                # Row-major with plotly.js's "rows,columns" shape (e.g. a contour's z), decoded
                # into rows by live_chart.js; a nested list would cost the server ~2 ms per
                # thousand numbers to walk and the wire ~19 bytes per number.
                spec["shape"] = f"{arr.shape[0]},{arr.shape[1]}"
            return spec
        return obj
    if isinstance(obj, Mapping):
        return {k: (v if k == "range" else _typed_arrays(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_typed_arrays(v) for v in obj]
    return obj


def _figure_json(figure: FigureLike, key: str, height: int) -> tuple[str, int]:
    """Serialise ``figure`` to the JSON plotly.js takes; return it and the chart height.

    Defaults ``layout.uirevision`` to ``key`` and ``layout.height`` to ``height``; a figure's
    own ``layout.height`` wins and sizes the element too, so the graph never overflows it.
    """
    if isinstance(figure, BaseFigure):
        # to_dict() already encodes numpy arrays as typed arrays.
        fig = figure.to_dict()
    elif isinstance(figure, Mapping):
        fig = {"data": _typed_arrays(list(figure.get("data") or [])),
               "layout": dict(figure.get("layout") or {})}
        if "config" in figure:
            fig["config"] = dict(figure["config"])
    else:
        raise TypeError(f"figure must be a plotly Figure or a dict, not {type(figure).__name__}")
    layout = dict(fig.get("layout") or {})
    # A constant uirevision tells Plotly.react to keep the user's zoom/pan/legend clicks
    # across updates; callers change it on purpose to reset the view.
    layout.setdefault("uirevision", key)
    own = layout.get("height")
    if isinstance(own, (int, float)) and not isinstance(own, bool) and own > 0:
        height = int(own)
    layout["height"] = height
    fig["layout"] = layout
    return pio.to_json(fig, validate=False, remove_uids=False), height


def _check_key(key: Any, what: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"{what} needs a non-empty string key")
    if "__" in key:
        # Streamlit reserves "__" in component ids for its event names.
        raise ValueError(f"{what} key must not contain '__': {key!r}")


def live_charts(figures: Mapping[str, FigureLike], *, key: str,
                bands: Optional[Sequence[Sequence[Sequence[str]]]] = None, height: int = 320,
                stamp: Optional[str] = None, feed: Optional[str] = None) -> None:
    """Render several live Plotly charts, arranged in one element that stays mounted.

    Like :func:`live_chart` for each figure, but all charts travel in one Streamlit element,
    so an update costs the browser one React pass instead of one per chart (measured on the
    dashboard: about 9 ms of the page's main thread per extra element per update).

    Parameters
    ----------
    figures
        Chart key -> figure (as for :func:`live_chart`). Each chart key is unique in the app.
    key
        Identifies the panel across reruns.
    bands
        The arrangement: a list of bands (rows), each a list of columns, each a list of the
        chart keys stacked in it; every chart exactly once. Columns of a band share its width
        and wrap under each other on a narrow screen. Default: all charts stacked.
    height
        Height in pixels of a chart whose figure sets no ``layout.height``.
    stamp, feed
        ``feed``: the URL path of a ``vizvi.live_feed.Feed`` from which the browser fetches
        the panel's next updates itself, and ``stamp``, which state these figures show
        ("revision.step"; the browser never draws an update older than the one it shows).
    """
    _checked_panel(figures, key, bands, height)  # a bad call fails before it needs a script run
    plotly_url, renderer_url = asset_urls()
    payload = encode_panel(figures, key=key, bands=bands, height=height, assets=(plotly_url, renderer_url),
                           stamp=stamp, feed=feed)
    _component(key=_KEY_PREFIX + key, data=payload, height="content", width="stretch")


def encode_panel(figures: Mapping[str, FigureLike], *, key: str, assets: tuple,
                 bands: Optional[Sequence[Sequence[Sequence[str]]]] = None, height: int = 320,
                 stamp: Optional[str] = None, feed: Optional[str] = None) -> bytes:
    """The bytes :func:`live_charts` sends (``assets``: the URLs of ``asset_urls``), also what
    a ``vizvi.live_feed.Feed`` answers with; callable from any thread."""
    bands, height = _checked_panel(figures, key, bands, height)
    plotly_url, renderer_url = assets
    charts, lines = [], []
    for k, figure in figures.items():
        fig_json, h = _figure_json(figure, k, height)
        charts.append({"key": k, "height": h})
        lines.append(fig_json)
    # Bytes, not a dict: Streamlit forwards them untouched (no second JSON round trip, no
    # dataframe sniffing), and the browser can skip byte-identical figures cheaply. The
    # payload is a JSON header line, then one figure per line (json.dumps and plotly's
    # encoder never emit a raw newline).
    head = {"key": key, "plotly": plotly_url, "module": renderer_url, "charts": charts,
            "bands": [[list(column) for column in band] for band in bands]}
    if stamp is not None:
        head["stamp"] = stamp
    if feed is not None:
        head["feed"] = feed
    return "\n".join([json.dumps(head, separators=(",", ":")), *lines]).encode("utf-8")


def _checked_panel(figures, key, bands, height) -> tuple:
    """``(bands, height)`` of a valid panel (bands defaulted); ValueError naming what is wrong."""
    _check_key(key, "live_charts")
    if not figures:
        raise ValueError("live_charts needs at least one figure")
    for k in figures:
        _check_key(k, "live_charts chart")
    if bands is None:
        bands = [[list(figures)]]
    placed = [k for band in bands for column in band for k in column]
    if sorted(placed) != sorted(figures):
        raise ValueError(f"bands must place every chart exactly once: got {placed}, charts {list(figures)}")
    height = int(height)
    if height <= 0:
        raise ValueError(f"height must be positive, got {height}")
    return bands, height


def app_path(path: str) -> str:
    """``path`` (absolute, e.g. ``/vizvi/feed/x``) under the server's ``server.baseUrlPath``."""
    base = (st_config.get_option("server.baseUrlPath") or "").strip("/")
    return (f"/{base}" if base else "") + path


def live_chart(figure: FigureLike, *, key: str, height: int = 320) -> None:
    """Render ``figure`` as a live Plotly chart that stays mounted across reruns.

    Call it on every (fragment) rerun with the same ``key`` and the newest figure: the first
    call mounts one Plotly graph; later calls send only the figure, which the browser applies
    with ``Plotly.react`` (no remount, no flicker). Identical figures are not redrawn. Works
    inside ``st.fragment(run_every=...)``.

    Parameters
    ----------
    figure
        A ``plotly.graph_objects.Figure`` or a plain dict with ``data`` (list of traces),
        ``layout`` and optionally ``config`` (plotly.js config, e.g. ``{"displayModeBar":
        False}``). 1-D numeric numpy arrays in a dict's traces are sent as compact typed
        arrays. Plain dicts avoid the ~3.5 kB plotly template a ``Figure`` carries on every
        update.
    key
        Identifies the chart across reruns; must be unique in the app and not contain
        ``"__"``. It also appears in the DOM as ``data-vizvi-chart`` and names the PNG that
        the toolbar's camera button downloads.
    height
        Height in pixels; a figure's own ``layout.height`` takes precedence.

    Notes
    -----
    ``layout.uirevision`` defaults to ``key``, so user zoom/pan survives updates; pass a new
    value to reset the view. ``layout.paper_bgcolor`` and ``layout.font.color`` default to
    the Streamlit theme's colours. In the DOM, the chart container
    ``[data-vizvi-chart=<key>]`` carries ``data-updates`` (incremented after each applied
    ``Plotly.react``) and contains the plotly graph div (``.js-plotly-plot``).
    """
    _check_key(key, "live_chart")
    live_charts({key: figure}, key=key, height=height)
