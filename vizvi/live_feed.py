"""Live chart updates over a route of their own, beside Streamlit's websocket.

A chart update sent through Streamlit is a fragment rerun: a script run on the server, and in
the browser a delta, a React pass over the page and its stale-element bookkeeping. Measured on
the run page (issue 12), that costs the page's main thread about as much as drawing the six
charts does, so the charts could not reach ten updates a second. A page served by
``python -m vizvi.serve`` (``make run``) therefore fetches its chart updates itself: the chart
panel registers a :class:`Feed` (an unguessable token, a cheap ``stamp`` of what is new and a
``payload`` builder), the payload it sends through Streamlit names the feed's URL, and the
browser (``live_chart.js``) asks that URL for the next update as soon as it has drawn the last
one, at most every ``live_chart.js``'s period. The answer is the same bytes ``live_charts``
sends, built in a worker thread, or 204 after ``WAIT_S`` with nothing new. It is gzipped in that
thread too, at level ``GZIP_LEVEL``: left to Streamlit's middleware, every update was gzipped at
level 9 on the server's event loop, the one thread that serves every session.

Streamlit offers no way to add a route to the server that ``streamlit run`` starts (``st.App``
does, but then the dashboard would no longer be a script that ``AppTest`` and ``streamlit
run`` take as is), so :func:`install_route` wraps the function that builds Streamlit's
Starlette application (checked by ``tests/test_live_feed.py``) and ``vizvi.serve`` calls it
before the server starts. Without it (``streamlit run dashboard.py``, ``AppTest``)
``route_installed()`` is False and the charts update through Streamlit as before.

A feed lives as long as its owner keeps it (the registry holds weak references): the session
state that holds it, so a closed session's feed is gone with it (404).
"""

from __future__ import annotations

import asyncio
import gzip
import secrets
import threading
import time
import weakref
from typing import Callable, Optional, Sequence

PATH = "/vizvi/feed/"
WAIT_S = 1.0  # a request with nothing new is answered (204) after this long
POLL_S = 0.01  # how often a waiting request looks at the stamp again
# Base64'd float arrays compress little more at 9 than at 1, at several times the cost.
GZIP_LEVEL = 1

_feeds: "weakref.WeakValueDictionary[str, Feed]" = weakref.WeakValueDictionary()
_lock = threading.Lock()
_installed = False


class Feed:
    """One page's chart updates: ``stamp()`` says cheaply what state they would show (equal
    stamps, the same update) and ``payload()`` builds it, returning ``(stamp, bytes)``.

    Both are set (and replaced, when the page's view changes) by :meth:`revise`; the URL stays.
    """

    def __init__(self, stamp: Callable[[], str], payload: Callable[[], tuple]):
        self.token = secrets.token_urlsafe(18)
        self._lock = threading.Lock()
        self._stamp, self._payload = stamp, payload
        self._sent = threading.Condition()
        self._sent_at = 0.0  # when the newest update was built to be sent (time.monotonic)
        with _lock:
            _feeds[self.token] = self

    @property
    def path(self) -> str:
        """The feed's URL path (under the server's base URL path, see :func:`url_path`)."""
        return PATH + self.token

    def revise(self, stamp: Callable[[], str], payload: Callable[[], tuple]) -> None:
        """Serve from now on what these build (a new view of the same charts)."""
        with self._lock:
            self._stamp, self._payload = stamp, payload

    def stamp(self) -> str:
        """What the next payload would show, as a short string."""
        with self._lock:
            stamp = self._stamp
        return stamp()

    def payload(self) -> tuple:
        """``(stamp, bytes)`` of the newest update."""
        with self._lock:
            payload = self._payload
        return payload()

    def sent(self) -> tuple:
        """``payload()`` for a request that sends it: waiters of :meth:`wait_sent` learn of it."""
        update = self.payload()
        with self._sent:
            self._sent_at = time.monotonic()
            self._sent.notify_all()
        return update

    def wait_sent(self, since: float, timeout: float) -> bool:
        """Wait at most ``timeout`` for an update built for sending after ``since`` (a
        ``time.monotonic()``); True if there is one."""
        with self._sent:
            return self._sent.wait_for(lambda: self._sent_at > since, timeout)


def lookup(token: str) -> Optional[Feed]:
    """The feed with this token, if its owner still holds it."""
    with _lock:
        return _feeds.get(token)


def route_installed() -> bool:
    """Whether this process's server answers feed requests (see :func:`install_route`)."""
    return _installed


async def next_update(feed: Feed, after: str, wait_s: float = WAIT_S, gzipped: bool = False) -> Optional[tuple]:
    """Wait up to ``wait_s`` for ``feed``'s stamp to differ from ``after``, then build its
    payload (gzipped if asked) in a worker thread; None if nothing changed meanwhile."""
    deadline = time.monotonic() + wait_s
    while feed.stamp() == after:
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(POLL_S)
    return await asyncio.to_thread(_build, feed, gzipped)


def _build(feed: Feed, gzipped: bool) -> tuple:
    stamp, body = feed.sent()
    return stamp, gzip.compress(body, compresslevel=GZIP_LEVEL) if gzipped else body


async def _endpoint(request):
    from starlette.responses import Response

    feed = lookup(request.path_params["token"])
    if feed is None:
        return Response(status_code=404, headers={"Cache-Control": "no-store"})
    gzipped = "gzip" in request.headers.get("accept-encoding", "")
    update = await next_update(feed, request.query_params.get("after", ""), gzipped=gzipped)
    if update is None:
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    _, body = update
    # With its Content-Encoding set, Streamlit's gzip middleware passes the body through.
    headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding", **({"Content-Encoding": "gzip"} if gzipped else {})}
    return Response(body, media_type="application/octet-stream", headers=headers)


def under_base(base: str, path: str) -> str:
    """``path`` under Streamlit's ``server.baseUrlPath`` ``base``."""
    base = (base or "").strip("/")
    return (f"/{base}" if base else "") + path


def url_path(base: str) -> str:
    """The route's pattern under Streamlit's ``server.baseUrlPath`` ``base``."""
    return under_base(base, PATH + "{token}")


def install_route(extra: Sequence[tuple] = ()) -> None:
    """Make the Streamlit server started later in this process answer ``PATH<token>``, and each
    ``(path, endpoint)`` of ``extra`` (GET; ``vizvi.serve`` adds the server's status).

    Wraps ``create_starlette_app`` where Streamlit's server module calls it (Streamlit 1.67,
    the Starlette server) so that the application it builds gets these routes first.
    """
    global _installed
    from starlette.routing import Route
    from streamlit import config
    from streamlit.web.server.starlette import starlette_server

    build = starlette_server.create_starlette_app
    if getattr(build, "_vizvi_feed", False):
        return

    def create_starlette_app_with_feed(runtime):
        app = build(runtime)
        base = config.get_option("server.baseUrlPath")
        routes = [Route(url_path(base), _endpoint, methods=["GET"])]
        routes += [Route(under_base(base, path), endpoint, methods=["GET"]) for path, endpoint in extra]
        app.router.routes[0:0] = routes
        return app

    create_starlette_app_with_feed._vizvi_feed = True
    starlette_server.create_starlette_app = create_starlette_app_with_feed
    _installed = True
