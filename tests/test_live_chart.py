"""Browser-free checks of vizvi.live_chart: figure encoding, generated assets, validation.

The browser behaviour (no flicker, rate, zoom, Pause) is in test_live_chart_browser.py.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import plotly
import plotly.graph_objects as go
import pytest

from vizvi import live_chart as lc


def _decode(spec: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(spec["bdata"]), dtype="<" + spec["dtype"])


def test_dict_figure_arrays_become_typed_arrays_and_layout_gets_defaults():
    x = np.arange(6, dtype=np.int64)
    y = np.linspace(0.0, 1.0, 6)
    fig = {"data": [{"type": "scatter", "x": x, "y": y, "text": ["a"] * 6}],
           "layout": {"xaxis": {"range": np.array([0, 3])}}}
    text, height = lc._figure_json(fig, "chart", 300)
    out = json.loads(text)
    trace = out["data"][0]
    assert trace["x"]["dtype"] == "i4" and _decode(trace["x"]).tolist() == x.tolist()
    assert trace["y"]["dtype"] == "f8" and np.array_equal(_decode(trace["y"]), y)
    assert trace["text"] == ["a"] * 6
    # Axis ranges stay plain lists (plotly.js wants numbers there, not typed arrays).
    assert out["layout"]["xaxis"]["range"] == [0, 3]
    assert out["layout"]["uirevision"] == "chart"
    assert height == 300 and out["layout"]["height"] == 300
    assert "\n" not in text  # the payload uses a newline to end its header
    # The caller's dict is not modified.
    assert "uirevision" not in fig["layout"] and isinstance(fig["data"][0]["x"], np.ndarray)


def test_figure_keeps_own_uirevision_and_height():
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[3.0, 1.0, 2.0]),
                    layout={"uirevision": "run-7", "height": 450})
    text, height = lc._figure_json(fig, "chart", 300)
    out = json.loads(text)
    assert out["layout"]["uirevision"] == "run-7"
    assert height == 450 and out["layout"]["height"] == 450
    assert out["data"][0]["type"] == "scatter"


def test_2d_arrays_carry_their_shape():
    z = np.arange(6, dtype=np.float32).reshape(2, 3)
    text, _ = lc._figure_json({"data": [{"type": "contour", "z": z}]}, "k", 200)
    spec = json.loads(text)["data"][0]["z"]
    assert spec["shape"] == "2,3" and spec["dtype"] == "f4"
    np.testing.assert_array_equal(_decode(spec).reshape(2, 3), z)


def test_int64_beyond_int32_falls_back_to_float64():
    text, _ = lc._figure_json({"data": [{"y": np.array([2**40, 3], dtype=np.int64)}]}, "k", 200)
    spec = json.loads(text)["data"][0]["y"]
    assert spec["dtype"] == "f8" and _decode(spec).tolist() == [2.0**40, 3.0]


def test_rejects_bad_figure_and_keys():
    with pytest.raises(TypeError):
        lc._figure_json([1, 2, 3], "k", 200)
    with pytest.raises(ValueError):
        lc.live_chart({"data": []}, key="a__b")
    with pytest.raises(ValueError):
        lc.live_chart({"data": []}, key="")
    with pytest.raises(ValueError):
        lc.live_chart({"data": []}, key="ok", height=0)


def _capture_payload(monkeypatch) -> list:
    """Replace the Streamlit element by a recorder of (key, payload bytes, kwargs)."""
    sent = []
    monkeypatch.setattr(lc, "asset_urls", lambda: ("/app/static/vizvi/plotly.js", "/app/static/vizvi/r.js"))
    monkeypatch.setattr(lc, "_component", lambda key, data, **kw: sent.append((key, data, kw)))
    return sent


def test_live_charts_sends_one_element_with_a_header_and_a_figure_per_line(monkeypatch):
    sent = _capture_payload(monkeypatch)
    figs = {"a": {"data": [{"x": np.arange(3), "y": np.ones(3)}]},
            "b": {"data": [], "layout": {"height": 500}},
            "c": {"data": []}}
    lc.live_charts(figs, key="panel", bands=[[["a", "b"], ["c"]]], height=250)
    (key, data, kw), = sent
    assert key == "vizvi-live-chart-panel" and kw["height"] == "content"
    head, *lines = data.decode().split("\n")
    head = json.loads(head)
    assert head["key"] == "panel" and head["bands"] == [[["a", "b"], ["c"]]]
    assert head["charts"] == [{"key": "a", "height": 250}, {"key": "b", "height": 500}, {"key": "c", "height": 250}]
    figures = [json.loads(line) for line in lines]
    assert [f["layout"]["uirevision"] for f in figures] == ["a", "b", "c"]
    assert _decode(figures[0]["data"][0]["x"]).tolist() == [0, 1, 2]
    # Default arrangement: everything stacked in one column.
    lc.live_charts({"x": {"data": []}, "y": {"data": []}}, key="p2")
    assert json.loads(sent[-1][1].split(b"\n")[0])["bands"] == [[["x", "y"]]]
    # A single chart is a panel of one, keyed by the chart.
    lc.live_chart({"data": []}, key="solo", height=111)
    head = json.loads(sent[-1][1].split(b"\n")[0])
    assert sent[-1][0] == "vizvi-live-chart-solo" and head["charts"] == [{"key": "solo", "height": 111}]


@pytest.mark.parametrize("bands, message", [
    ([[["a"]]], "exactly once"),                 # b missing
    ([[["a", "b", "a"]]], "exactly once"),       # a twice
    ([[["a"], ["b", "z"]]], "exactly once"),     # z is not a chart
])
def test_live_charts_rejects_bands_that_do_not_place_every_chart_once(monkeypatch, bands, message):
    sent = _capture_payload(monkeypatch)
    with pytest.raises(ValueError, match=message):
        lc.live_charts({"a": {"data": []}, "b": {"data": []}}, key="p", bands=bands)
    assert not sent


def test_live_charts_rejects_bad_keys_and_empty_panels(monkeypatch):
    _capture_payload(monkeypatch)
    with pytest.raises(ValueError):
        lc.live_charts({}, key="p")
    with pytest.raises(ValueError):
        lc.live_charts({"a__b": {"data": []}}, key="p")
    with pytest.raises(ValueError):
        lc.live_charts({"a": {"data": []}}, key="p__q")


def test_ensure_assets_writes_plotly_renderer_and_gitignore(tmp_path, monkeypatch):
    monkeypatch.setattr(lc, "_assets_done", {})
    plotly_name, renderer_name = lc.ensure_assets(tmp_path)
    folder = tmp_path / "vizvi"
    source = lc.Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert (folder / plotly_name).read_bytes() == source.read_bytes()
    assert (folder / renderer_name).read_bytes() == lc._RENDERER_SOURCE.read_bytes()
    assert renderer_name.startswith("live_chart-") and renderer_name.endswith(".js")
    assert "*" in (folder / ".gitignore").read_text().splitlines()
    # Idempotent, and a damaged copy is repaired on the next process start.
    (folder / renderer_name).write_text("broken")
    monkeypatch.setattr(lc, "_assets_done", {})
    assert lc.ensure_assets(tmp_path) == (plotly_name, renderer_name)
    assert (folder / renderer_name).read_bytes() == lc._RENDERER_SOURCE.read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [".gitignore", plotly_name, renderer_name])


def test_asset_urls_requires_static_serving(monkeypatch):
    monkeypatch.setattr(lc.st_config, "get_option",
                        lambda name: False if name == "server.enableStaticServing" else None)
    with pytest.raises(lc.LiveChartConfigError, match="enableStaticServing"):
        lc.asset_urls()
