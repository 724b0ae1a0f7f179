"""``python -m vizvi.serve [streamlit options] [-- dashboard options]``: the dashboard's server.

The same as ``streamlit run dashboard.py ...`` (every Streamlit option works the same way, and
the dashboard's own options, ``--model-file`` and ``--max-training``, follow ``--``), plus
``vizvi.serving.warm_up``: the default run's and the presets' compiled programs are built in
the background from the moment the server starts, not at the first Start, and the live charts
fetch their updates from a route of their own (``vizvi.live_feed``). ``make run`` uses it.
A different entry script can be given first (``python -m vizvi.serve other.py ...``).
"""

from __future__ import annotations

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

    # The server's own lines (the warm-up's end, say) beside Streamlit's, in its log.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    vizvi_log = logging.getLogger("vizvi")
    vizvi_log.addHandler(handler)
    vizvi_log.setLevel(logging.INFO)
    serving.warm_up()  # a daemon thread; the dashboard's sessions share what it builds
    live_feed.install_route()  # the charts fetch their updates beside Streamlit's websocket
    from streamlit.web import cli

    cli.main(["run", script, *args], prog_name="streamlit")


if __name__ == "__main__":
    main()
