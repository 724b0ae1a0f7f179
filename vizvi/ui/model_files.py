"""The dashboard's model files: ``streamlit run dashboard.py -- --model-file a.py --model-file b.py``.

Each file is loaded once per process (``vizvi.model_file.register_model_files``, idempotent for
a path already registered) and its model joins the model list beside the built-in ones. A bad
file never stops the server: its message (``path:line: ...``) is printed on the terminal once
and shown at the top of every page, and the built-in models and the good files work as ever.
"""

from __future__ import annotations

import sys
import threading
from typing import Sequence

from vizvi.errors import ConfigError
from vizvi.model_file import register_model_files

FLAG = "--model-file"

_lock = threading.Lock()
_loaded: dict = {}  # tuple of paths -> the messages of the files that failed


def paths_from_argv(argv: Sequence[str]) -> list:
    """The paths given as ``--model-file PATH`` or ``--model-file=PATH`` in ``argv`` (the script's
    arguments: what follows ``--`` after ``streamlit run dashboard.py``), in order."""
    paths, args = [], list(argv)
    for k, arg in enumerate(args):
        if arg == FLAG and k + 1 < len(args):
            paths.append(args[k + 1])
        elif arg.startswith(FLAG + "="):
            paths.append(arg[len(FLAG) + 1:])
    return paths


def register(paths: Sequence[str]) -> list:
    """Register the model files at ``paths`` (once per process for the same paths); returns the
    messages of those that failed, printed on stderr the first time."""
    key = tuple(paths)
    with _lock:
        if key not in _loaded:
            messages = []
            for path in key:  # one at a time: a bad file must not keep the next one out
                try:
                    register_model_files([path])
                except ConfigError as e:  # a ModelFileError: "path:line: what is wrong"
                    messages.append(e.message)
                except Exception as e:  # noqa: BLE001 - nothing a user's file raises may stop the server
                    messages.append(f"{path}: {type(e).__name__}: {e}")
            for message in messages:
                print(f"vizvi: model file not loaded: {message}", file=sys.stderr, flush=True)
            _loaded[key] = messages
        return list(_loaded[key])


def register_from_argv(argv: Sequence[str] = None) -> list:
    """``register`` the model files named in ``argv`` (default: this process's ``sys.argv``);
    the messages of those that failed."""
    return register(paths_from_argv(sys.argv[1:] if argv is None else argv))
