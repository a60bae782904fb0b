"""The thread policy of ``fit`` and ``explain``: one intra-op thread by default, the user's setting restored after.

CounteRGAN's networks are small (tens of thousands of weights, batches of a few hundred rows). A
second intra-op thread buys little for them on a quiet machine, and on a busy one (next to a model
server, in CI, on a laptop) threads that wait for each other while other processes hold the cores
made training twenty times slower (see the "Threads" section of docs/design.md). ``CounteRGAN``
therefore runs ``fit`` and ``explain`` with ``n_threads`` intra-op threads (default 1) and gives
the framework its previous setting back when the call returns or raises.

``fit`` also limits the native thread pools of the process (OpenMP, BLAS: what scikit-learn's gradient-boosted
trees and numpy use) to ``n_threads``, through threadpoolctl, for its duration: a black-box fit calls the
predictor on a few hundred rows thousands of times, and a gradient-boosted Pipeline whose OpenMP threads spin
on a busy machine made one fit take many minutes instead of seconds. ``explain`` leaves them alone (finding
the pools costs tens of milliseconds, more than a whole explanation).

What each framework allows:

- PyTorch: ``torch.set_num_threads`` can be changed at any time; it is set for the call and restored.
- TensorFlow: the sizes of its thread pools are fixed when its runtime starts (the first operation
  or ``tf.config`` query), and ``tf.config.threading.set_intra_op_parallelism_threads`` raises
  afterwards; eager TensorFlow 2 has no per-call thread option for compiled functions. Setting
  them before the runtime starts would change the user's process for good, which this policy
  promises not to do. So with the TensorFlow backend ``n_threads`` changes nothing; the limit is
  logged once per process (level INFO). To run TensorFlow with one thread, set
  ``TF_NUM_INTRAOP_THREADS=1`` in the environment, or call
  ``tf.config.threading.set_intra_op_parallelism_threads(1)`` at the start of the program.
"""

import functools
import logging
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, TypeVar

import numpy as np

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_LOCK = threading.Lock()
_state = {"depth": 0, "saved": 0}
"""Calls inside the policy now (across Python threads), and PyTorch's setting before the first of them."""
_tf_note_logged = False


def check_n_threads(n_threads: Any) -> Optional[int]:
    """``n_threads`` checked: a positive integer, or None to leave the framework's setting alone.

    Raises
    ------
    ValueError
        For anything else (zero, negative numbers, floats, booleans, strings).
    """
    if n_threads is None:
        return None
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer (intra-op threads for fit and explain) or None (leave "
                         f"the framework's setting as it is), got {n_threads!r}.")
    return int(n_threads)


@contextmanager
def intra_op_threads(framework: str, n_threads: Optional[int]) -> Iterator[None]:
    """Run the block with ``n_threads`` intra-op threads of ``framework``, then restore the previous setting.

    Nested and concurrent blocks (several explainers in one process, or one explainer called from
    several Python threads) are counted: the setting found by the first block is restored when the
    last one ends, even when a block raises.

    Parameters
    ----------
    framework
        ``'pytorch'`` or ``'tensorflow'`` (the backend's name). TensorFlow's setting cannot be
        changed once its runtime runs (see the module's description): the block then runs as it is.
    n_threads
        Intra-op threads for the block; None runs the block without touching the setting.
    """
    if n_threads is None:
        yield
        return
    if framework != "pytorch":
        _note_tensorflow(framework)
        yield
        return
    import torch

    with _LOCK:
        if _state["depth"] == 0:
            _state["saved"] = torch.get_num_threads()
        _state["depth"] += 1
        if torch.get_num_threads() != n_threads:
            torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        with _LOCK:
            _state["depth"] -= 1
            if _state["depth"] == 0 and torch.get_num_threads() != _state["saved"]:
                torch.set_num_threads(_state["saved"])


def _note_tensorflow(framework: str) -> None:
    global _tf_note_logged
    if framework == "tensorflow" and not _tf_note_logged:
        _tf_note_logged = True
        logger.info("n_threads is not applied with the TensorFlow backend: TensorFlow fixes its thread pools when its "
                    "runtime starts. Set TF_NUM_INTRAOP_THREADS=1 in the environment (or call "
                    "tf.config.threading.set_intra_op_parallelism_threads(1) first thing) to train with one thread.")


def thread_policy(method: F) -> F:
    """Decorate an explainer method so that it runs under :func:`intra_op_threads` with the explainer's
    ``backend`` and ``n_threads``."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with intra_op_threads(self.backend, self.n_threads):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


_NATIVE_LOCK = threading.Lock()
_native: dict = {"depth": 0, "limits": None}
"""Fits inside :func:`native_threads` now (across Python threads), and the limits the first of them set."""


@contextmanager
def native_threads(n_threads: Optional[int]) -> Iterator[None]:
    """Run the block with the process's native thread pools (OpenMP, BLAS) limited to ``n_threads``, then restore
    them (threadpoolctl; nested and concurrent blocks are counted as in :func:`intra_op_threads`).

    Parameters
    ----------
    n_threads
        Threads for the block; None runs the block without touching the pools.
    """
    if n_threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with _NATIVE_LOCK:
        if _native["depth"] == 0:
            _native["limits"] = threadpool_limits(limits=n_threads)
        _native["depth"] += 1
    try:
        yield
    finally:
        with _NATIVE_LOCK:
            _native["depth"] -= 1
            if _native["depth"] == 0 and _native["limits"] is not None:
                _native["limits"].restore_original_limits()
                _native["limits"] = None


def fit_thread_policy(method: F) -> F:
    """:func:`thread_policy` plus :func:`native_threads`: for ``fit``, which calls the predictor thousands of
    times."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with intra_op_threads(self.backend, self.n_threads), native_threads(self.n_threads):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
