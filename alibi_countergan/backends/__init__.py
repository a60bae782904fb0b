"""Backend selection, with lazy imports so that the package works with either framework missing."""

import importlib
import importlib.util
from typing import Any, List, Optional

from alibi_countergan.backends.base import Backend, Batch, NetworkSpec, TrainingSpec

__all__ = ["Backend", "Batch", "NetworkSpec", "TrainingSpec", "BACKENDS", "framework_of", "installed",
           "load_backend", "resolve_backend"]

BACKENDS = ("pytorch", "tensorflow")
"""Supported backends, in the order used when nothing else decides."""

_MODULES = {"pytorch": ("alibi_countergan.backends.pytorch", "torch", "torch"),
            "tensorflow": ("alibi_countergan.backends.tensorflow", "tensorflow", "tensorflow")}
_ALIASES = {"torch": "pytorch", "pytorch": "pytorch", "tensorflow": "tensorflow", "tf": "tensorflow",
            "keras": "tensorflow"}


def framework_of(model: Any) -> Optional[str]:
    """``'pytorch'`` for a ``torch.nn.Module``, ``'tensorflow'`` for a Keras model, else None.

    Decided from the class hierarchy's module names, so no framework is imported to find out.
    """
    for cls in type(model).__mro__:
        root = cls.__module__.split(".")[0]
        if root == "torch" and cls.__name__ == "Module":
            return "pytorch"
        if root in ("keras", "tensorflow", "tf_keras") and cls.__name__ in ("Model", "Functional", "Sequential"):
            return "tensorflow"
    return None


def installed() -> List[str]:
    """The backends whose framework can be imported here."""
    return [name for name in BACKENDS if importlib.util.find_spec(_MODULES[name][1]) is not None]


def resolve_backend(backend: Optional[str], predictor: Any) -> str:
    """The backend's canonical name: the one asked for, else the predictor's framework, else the first installed.

    Raises
    ------
    ValueError
        For an unknown name.
    ImportError
        When no framework is installed.
    """
    if backend is not None:
        if not isinstance(backend, str) or backend.strip().lower() not in _ALIASES:
            raise ValueError(f"backend={backend!r} is not supported; use one of {list(BACKENDS)} or None.")
        return _ALIASES[backend.strip().lower()]
    framework = framework_of(predictor)
    if framework is not None:
        return framework
    available = installed()
    if not available:
        raise ImportError("CounteRGAN needs PyTorch or TensorFlow: install `alibi-countergan[torch]` or "
                          "`alibi-countergan[tensorflow]`.")
    return available[0]


def load_backend(name: str) -> Backend:
    """A new backend instance, importing its framework on demand.

    Raises
    ------
    ImportError
        Naming the extra to install when the framework is missing.
    """
    module_name, framework, extra = _MODULES[name]
    if importlib.util.find_spec(framework) is None:
        raise ImportError(f"The {name} backend needs {framework}, which is not installed. "
                          f"Install it with `pip install alibi-countergan[{extra}]`.")
    module = importlib.import_module(module_name)
    backend: Backend = module.create_backend()
    return backend
