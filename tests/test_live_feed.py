"""The chart feed (``vizvi.live_feed``) and the run page's feed of a trainer's charts
(``vizvi.ui.panels.chart_feed``'s functions). In a real browser: ``tests/test_load_browser.py``
(served by ``python -m vizvi.serve``, which installs the route)."""

from __future__ import annotations

import asyncio
import gc
import gzip
import inspect
import json
import types

import pytest

from vizvi import live_feed
from vizvi.engine import Run, RunConfig
from vizvi.ui import panels
from vizvi.worker import Trainer


def _request(token: str, after: str = "", accept_encoding: str = ""):
    return types.SimpleNamespace(path_params={"token": token}, query_params={"after": after},
                                 headers={"accept-encoding": accept_encoding} if accept_encoding else {})


def test_a_feed_is_found_by_its_token_while_its_owner_holds_it():
    feed = live_feed.Feed(lambda: "0.1", lambda: ("0.1", b"x"))
    assert live_feed.lookup(feed.token) is feed
    assert feed.path == live_feed.PATH + feed.token and len(feed.token) >= 24
    token = feed.token
    del feed
    gc.collect()
    assert live_feed.lookup(token) is None


def test_a_request_waits_for_something_new_then_gets_the_payload_built_off_the_event_loop():
    state = {"step": 1, "built_in": None}

    def payload():
        import threading

        state["built_in"] = threading.current_thread().name
        return f"0.{state['step']}", b"update"

    feed = live_feed.Feed(lambda: f"0.{state['step']}", payload)

    async def scenario():
        nothing = await live_feed.next_update(feed, "0.1", wait_s=0.05)
        waiting = asyncio.ensure_future(live_feed.next_update(feed, "0.1", wait_s=5.0))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        state["step"] = 2  # the trainer committed a chunk
        return nothing, await asyncio.wait_for(waiting, 2.0)

    nothing, update = asyncio.run(scenario())
    assert nothing is None
    assert update == ("0.2", b"update")
    assert state["built_in"] != "MainThread"


def test_the_endpoint_answers_200_with_the_payload_204_when_nothing_changed_and_404_for_a_gone_feed(monkeypatch):
    monkeypatch.setattr(live_feed, "WAIT_S", 0.05)
    feed = live_feed.Feed(lambda: "3.7", lambda: ("3.7", b"head\nfigure"))
    ok = asyncio.run(live_feed._endpoint(_request(feed.token, "3.6")))
    assert ok.status_code == 200 and ok.body == b"head\nfigure"
    assert ok.headers["cache-control"] == "no-store"
    assert asyncio.run(live_feed._endpoint(_request(feed.token, "3.7"))).status_code == 204
    assert asyncio.run(live_feed._endpoint(_request("no-such-feed"))).status_code == 404


def test_the_endpoint_gzips_in_its_worker_thread_for_a_client_that_accepts_it(monkeypatch):
    body = b"head\n" + b"figure " * 500
    feed = live_feed.Feed(lambda: "3.7", lambda: ("3.7", body))
    packed = asyncio.run(live_feed._endpoint(_request(feed.token, "3.6", accept_encoding="gzip, deflate, br")))
    assert packed.status_code == 200 and packed.headers["content-encoding"] == "gzip"
    assert gzip.decompress(packed.body) == body and len(packed.body) < len(body) / 10
    plain = asyncio.run(live_feed._endpoint(_request(feed.token, "3.6")))
    assert "content-encoding" not in plain.headers and plain.body == body


def test_a_page_can_wait_for_its_feed_to_send_an_update(monkeypatch):
    import threading
    import time

    feed = live_feed.Feed(lambda: "0.2", lambda: ("0.2", b"update"))
    since = time.monotonic()
    assert not feed.wait_sent(since, timeout=0.05)  # nothing sent since
    sender = threading.Timer(0.05, lambda: asyncio.run(live_feed._endpoint(_request(feed.token, "0.1"))))
    sender.start()
    assert feed.wait_sent(since, timeout=5.0)
    sender.join()
    assert not feed.wait_sent(time.monotonic(), timeout=0.05)


def test_revising_a_feed_keeps_its_url_and_serves_the_new_view():
    feed = live_feed.Feed(lambda: "0.5", lambda: ("0.5", b"old"))
    url = feed.path
    feed.revise(lambda: "1.5", lambda: ("1.5", b"new"))
    assert feed.path == url and feed.stamp() == "1.5" and feed.payload() == ("1.5", b"new")


def test_install_route_puts_the_feed_first_in_the_app_streamlit_builds(monkeypatch):
    """The route is added where Streamlit 1.67's server builds its Starlette application; if
    Streamlit stops calling that function there, the charts would silently fall back."""
    from starlette.applications import Starlette
    from starlette.routing import Route
    from streamlit.web.server.starlette import starlette_server

    assert "create_starlette_app(self._runtime)" in inspect.getsource(starlette_server), \
        "Streamlit's server no longer builds its app with create_starlette_app: revisit live_feed.install_route"
    monkeypatch.setattr(starlette_server, "create_starlette_app",
                        lambda runtime: Starlette(routes=[Route("/{path:path}", lambda r: None)]))
    monkeypatch.setattr(live_feed, "_installed", False)
    status = lambda request: None  # noqa: E731
    live_feed.install_route(extra=[("/vizvi/status", status)])
    live_feed.install_route()  # once only
    app = starlette_server.create_starlette_app(object())
    assert live_feed.route_installed()
    assert [r.path for r in app.router.routes] == ["/vizvi/feed/{token}", "/vizvi/status", "/{path:path}"]
    assert app.router.routes[1].endpoint is status
    assert live_feed.url_path("/base/") == "/base/vizvi/feed/{token}"
    assert live_feed.under_base("base", "/vizvi/status") == "/base/vizvi/status"


@pytest.fixture(scope="module")
def trainer():
    run = Run(RunConfig(model="poisson-gamma", steps=10_000))
    run.compile()
    run.advance(300)
    t = Trainer(run)
    yield t
    t.close()


def _view(**changes) -> panels.ChartView:
    view = panels.ChartView(method="ema", span=50, log_axes=False, per_evaluation=False, shown=None, latent=None,
                            overview=None, present=False)
    return view._replace(**changes)


def test_the_run_pages_feed_builds_the_charts_the_fragment_would_stamped_with_view_and_step(trainer):
    hold = panels.SlowChartHold()
    stamp, payload = panels._feed_functions(trainer, _view(), hold, 2, ("/p.js", "/r.js"))
    at, body = payload()
    assert at == stamp() == "2.300"
    head, *lines = body.decode().split("\n")
    head = json.loads(head)
    assert head["stamp"] == "2.300" and "feed" not in head
    assert [c["key"] for c in head["charts"]] == ["elbo", "params", "grads", "variance", "density", "khat"]
    assert len(lines) == 6
    fragment = panels.ChartView.figures(_view(), trainer.snapshot(diagnosis=False))
    assert json.loads(lines[0])["data"][0]["name"] == fragment["elbo"]["data"][0]["name"]
    trainer.run.advance(50)
    assert stamp() == "2.350"
    _, presented = panels._feed_functions(trainer, _view(present=True), hold, 3, ("/p.js", "/r.js"))
    assert json.loads(presented()[1].decode().split("\n")[1])["layout"]["font"] == {"size": 18}


def test_slow_chart_hold_redraws_one_held_chart_at_a_time():
    hold = panels.SlowChartHold()
    first = {"elbo": 1, "variance": "v1", "khat": "k1"}
    assert hold.apply(first, ("variance", "khat"), ("view",), fresh=True, now=0.0) == first
    later = {"elbo": 2, "variance": "v2", "khat": "k2"}
    assert hold.apply(later, ("variance", "khat"), ("view",), fresh=False, now=0.1) == {"elbo": 2, "variance": "v1", "khat": "k1"}
    once = hold.apply(later, ("variance", "khat"), ("view",), fresh=False, now=panels.SLOW_S + 0.1)
    assert once["elbo"] == 2 and sorted([once["variance"], once["khat"]]) == ["k1", "v2"]
    assert hold.apply(later, ("variance", "khat"), ("other view",), fresh=False, now=1.0) == later
