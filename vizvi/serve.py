"""``python -m vizvi.serve [streamlit options] [-- dashboard options]``: the dashboard's server.

The same as ``streamlit run dashboard.py ...`` (every Streamlit option works the same way, and
the dashboard's own options, ``--model-file`` and ``--max-training``, follow ``--``), plus
``vizvi.serving.warm_up``: the default run's and the presets' compiled programs are built in
the background from the moment the server starts, not at the first Start, the live charts
fetch their updates from a route of their own (``vizvi.live_feed``), ``/vizvi/status`` says what
the server is doing (JSON: runs training and queued, trainer threads, warm-up, memory; see
``vizvi.serving.server_status``), and the server gives way
to other programs wanting the CPU, a browser on the same machine first among them
(``vizvi.serving.yield_to_other_programs``; ``VIZVI_SERVER_NICE=0`` keeps its priority). ``make run`` uses it.
A different entry script can be given first (``python -m vizvi.serve other.py ...``).
"""

from __future__ import annotations

import atexit
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard.py"


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Start the warm-up, then Streamlit's server in this process (it returns when the server stops)."""
    args = list(sys.argv[1:] if argv is None else argv)
    script = args.pop(0) if args and args[0].endswith(".py") else str(DASHBOARD)
    from vizvi import live_feed, serving
    from vizvi.errors import ConfigError

    # The server's own lines (the warm-up's end, say) beside Streamlit's, in its log.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    vizvi_log = logging.getLogger("vizvi")
    vizvi_log.addHandler(handler)
    vizvi_log.setLevel(logging.INFO)
    try:
        nice = serving.server_nice_from()
    except ConfigError as e:
        raise SystemExit(f"vizvi.serve: {e.message}") from None
    restore = serving.yield_to_other_programs(nice)
    if restore is not None:
        atexit.register(restore)
    serving.warm_up()  # a daemon thread; the dashboard's sessions share what it builds
    # The charts fetch their updates beside Streamlit's websocket; whoever runs the server can ask
    # what it is doing.
    live_feed.install_route(extra=[(serving.STATUS_PATH, serving.status_endpoint)])
    from streamlit.web import cli

    cli.main(["run", script, *args], prog_name="streamlit")


if __name__ == "__main__":
    main()
