"""Backend selection, with lazy imports so that the package works with either framework missing."""

import importlib
import importlib.util
from typing import Any, List, Optional

from alibi_countergan.backends.base import Backend, Batch, NetworkSpec, TrainingSpec

__all__ = ["Backend", "Batch", "NetworkSpec", "TrainingSpec", "BACKENDS", "framework_of", "install_hint", "installed",
           "load_backend", "resolve_backend"]

BACKENDS = ("pytorch", "tensorflow")
"""Supported backends, in the order used when nothing else decides."""

_MODULES = {"pytorch": ("alibi_countergan.backends.pytorch", "torch", "torch"),
            "tensorflow": ("alibi_countergan.backends.tensorflow", "tensorflow", "tensorflow")}
_ALIASES = {"torch": "pytorch", "pytorch": "pytorch", "tensorflow": "tensorflow", "tf": "tensorflow",
            "keras": "tensorflow"}


def install_hint(extra: str) -> str:
    """The commands that install the package with an extra (the README's Install section says the same)."""
    return (f"Install the package with its {extra!r} extra: from a clone of the repository, "
            f"`pip install -e \".[{extra}]\" -c constraints.txt`; or from the repository's URL, "
            f"`pip install \"alibi-countergan[{extra}] @ git+<repository URL>\" -c constraints.txt` (see the "
            f"README's Install section).")


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

    Only checks that the framework can be found (``importlib.util.find_spec``); nothing is imported.

    Raises
    ------
    ValueError
        For an unknown name.
    ImportError
        When the framework of the backend asked for is not installed, or when no framework is,
        with the command that installs it.
    """
    if backend is not None:
        if not isinstance(backend, str) or backend.strip().lower() not in _ALIASES:
            raise ValueError(f"backend={backend!r} is not supported; use one of {list(BACKENDS)} or None.")
        name = _ALIASES[backend.strip().lower()]
        _require_framework(name)
        return name
    framework = framework_of(predictor)
    if framework is not None:
        return framework
    available = installed()
    if not available:
        raise ImportError(f"CounteRGAN needs PyTorch or TensorFlow, and neither is installed. {install_hint('torch')} "
                          f"Or use the 'tensorflow' extra in the same command.")
    return available[0]


def _require_framework(name: str) -> None:
    _, framework, extra = _MODULES[name]
    if importlib.util.find_spec(framework) is None:
        raise ImportError(f"The {name} backend needs {framework}, which is not installed. {install_hint(extra)}")


def load_backend(name: str) -> Backend:
    """A new backend instance, importing its framework on demand.

    Raises
    ------
    ImportError
        Naming the extra to install when the framework is missing.
    """
    _require_framework(name)
    module = importlib.import_module(_MODULES[name][0])
    backend: Backend = module.create_backend()
    return backend
