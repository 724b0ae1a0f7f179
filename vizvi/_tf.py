"""TensorFlow, imported once and configured for vizvi: every vizvi module takes ``tf`` from here.

Importing through this module (rather than ``import tensorflow`` in each module) keeps the
start-up settings in one place, and keeps TensorFlow out of modules that do not need it
(``vizvi.live_chart``), so a page that only draws charts does not load it.
"""

import os as _os

# TensorFlow's C++ start-up chatter (CUDA plugin registration on a machine without a GPU) is
# noise for a CLI and a dashboard; real errors still surface as Python exceptions.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 silenced for the duration of the import.

    On a machine without a GPU, TensorFlow's CUDA plugins log "Unable to register cuDNN/cuBLAS
    factory" straight to fd 2 before absl logging is initialised, ignoring TF_CPP_MIN_LOG_LEVEL.
    The CLI promises one line on a bad argument, so those lines must not reach stderr. An import
    failure still raises (its traceback is printed after fd 2 is restored).
    """
    import sys

    if "tensorflow" in sys.modules or _os.environ.get("VIZVI_TF_VERBOSE"):
        return
    try:
        saved = _os.dup(2)
    except OSError:  # no usable fd 2 (unusual embedding): import normally
        import tensorflow  # noqa: F401
        return
    devnull = _os.open(_os.devnull, _os.O_WRONLY)
    try:
        _os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        _os.dup2(saved, 2)
        _os.close(saved)
        _os.close(devnull)


_import_tensorflow_quietly()


def _one_thread_per_op() -> None:
    """Run TensorFlow's kernels on one thread.

    vizvi's steps are tiny (a handful of samples): measured on the 2-core reference machine,
    one intra-op thread trains as fast as the default pool (14.8k vs 13.9k steps/s), and it
    leaves the other core to the Streamlit server and the browser instead of spinning on it.
    Must run before TensorFlow's runtime starts; if something started it already, keep it.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


_one_thread_per_op()

import tensorflow as tf  # noqa: E402  (already imported above; this binds the name)

__all__ = ["tf"]
