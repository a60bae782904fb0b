"""Every private detail of alibi and mlserver-alibi-explain this package relies on, in one place.

The package reaches alibi and MLServer through their public APIs wherever they have one. This
module holds what is left: each entry below says why no public route exists in the version it was
written for (:data:`WRITTEN_FOR`), and ``tests/test_upstream.py`` checks each against the installed
version, failing with a request to re-check the entry when that version differs. TensorFlow's
private internals are gathered the same way in :mod:`alibi_countergan.backends.tf_compat`.

alibi 0.9.6
    ``alibi.saving`` (:func:`register_saving`): ``save_explainer`` and ``load_explainer`` pick an
    explainer's own saving functions as the module attributes ``_save_<meta["name"]>`` and
    ``_load_<meta["name"]>``, looked up with ``getattr``; alibi has no public registry for them
    (the module's only other route, ``_simple_save``, pickles the whole explainer with dill). So the
    two functions are set as attributes of ``alibi.saving``. alibi writes ``meta.dill`` before it
    calls the save function, and ``load_explainer`` passes the function ``(path, predictor, meta)``.

    ``alibi.api.interfaces.Base`` (:func:`mirror_meta`): when an explainer is made, ``Base``'s
    ``__attrs_post_init__`` copies every key of ``meta`` to an attribute (``explainer.name``,
    ``explainer.type``...). alibi offers no public way to redo that when ``meta`` changes later
    (``_update_metadata`` changes ``meta`` only), so CounteRGAN repeats it itself, after
    ``set_params`` and when a save is loaded.

mlserver 1.6.1 and mlserver-alibi-explain 1.6.1
    The runtimes of :mod:`alibi_countergan.serving` subclass ``AlibiExplainBlackBoxRuntime`` and
    ``AlibiExplainWhiteBoxRuntime`` for their settings (``AlibiExplainSettings``), their custom
    ``/explain`` endpoint and their thread pool. They override only MLServer's public extension
    points, ``MLModel.load``, ``predict`` and ``unload`` (documented as "can be overriden"), and
    ``get_alibi_method``; none of mlserver-alibi-explain's underscore methods
    (:data:`OVERRIDDEN_PRIVATE_METHODS` is empty, and the test checks that no helper of the
    runtimes shadows one). They read one private attribute, the thread pool the runtime base class
    makes in its constructor (:func:`runtime_executor`), which mlserver-alibi-explain has no public
    accessor for; sharing it keeps explanations and loading on the one pool the upstream runtime
    sizes. They keep the explainer in ``_model``, the attribute upstream's ``load`` sets and its
    (overridden) ``get_alibi_method`` and ``_explain_impl`` read (:data:`SHARED_ATTRIBUTES`).

This module imports neither MLServer nor any other module of this package, so that
:mod:`alibi_countergan` and :mod:`alibi_countergan.serving` can both import it without cycles and
without MLServer installed.
"""

import importlib.metadata
from concurrent.futures import Executor
from typing import Any, Callable, Dict, Optional, Tuple

WRITTEN_FOR: Dict[str, str] = {"alibi": "0.9.6", "mlserver": "1.6.1", "mlserver-alibi-explain": "1.6.1"}
"""The upstream distributions whose private details this module relies on, and the versions they were read in."""

SaveFunction = Callable[[Any, Any], None]
"""``(explainer, path)``: what ``alibi.saving.save_explainer`` calls after writing ``meta.dill``."""

LoadFunction = Callable[[Any, Any, Dict[str, Any]], Any]
"""``(path, predictor, meta)``: what ``alibi.saving.load_explainer`` calls after reading ``meta.dill``."""

SAVING_PREFIXES: Tuple[str, str] = ("_save_", "_load_")
"""The prefixes of the ``alibi.saving`` attributes its dispatch looks up, before ``meta["name"]``."""

OVERRIDDEN_PRIVATE_METHODS: Tuple[str, ...] = ()
"""mlserver-alibi-explain's underscore methods the serving runtimes override (none)."""

SHARED_ATTRIBUTES: Dict[str, str] = {
    "_executor": "the runtime's thread pool, made by AlibiExplainRuntimeBase.__init__; read by runtime_executor",
    "_model": "the explainer, under upstream's name for it; set by the runtimes' own load",
}
"""Private attributes of ``mlserver_alibi_explain.runtime.AlibiExplainRuntimeBase`` the runtimes read or set."""


def installed_version(distribution: str) -> Optional[str]:
    """The installed version of ``distribution``, or None when it is not installed.

    Parameters
    ----------
    distribution
        A distribution name, as in :data:`WRITTEN_FOR`.

    Returns
    -------
    version
        Its version string, or None.
    """
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_drift(distribution: str) -> Optional[str]:
    """A message when the installed ``distribution`` is not the version the hooks were written for, else None.

    Parameters
    ----------
    distribution
        A key of :data:`WRITTEN_FOR`.

    Returns
    -------
    message
        What to re-check, or None when the versions agree (or the distribution is not installed).
    """
    installed = installed_version(distribution)
    expected = WRITTEN_FOR[distribution]
    if installed is None or installed == expected:
        return None
    return (f"{distribution} {installed} is installed, but alibi_countergan/upstream.py was written for "
            f"{distribution} {expected}: re-read the private details its docstring lists for {distribution} "
            f"against the installed source, adapt the hooks if they changed, then set WRITTEN_FOR[{distribution!r}] "
            f"to {installed!r}.")


def register_saving(name: str, save: SaveFunction, load: LoadFunction) -> None:
    """Make ``alibi.saving.save_explainer`` / ``load_explainer`` call ``save`` / ``load`` for explainers ``name``.

    Parameters
    ----------
    name
        The explainer's ``meta["name"]`` (its class name).
    save
        Called as ``save(explainer, path)`` after alibi wrote ``meta.dill`` into ``path``.
    load
        Called as ``load(path, predictor, meta)`` with the unpickled ``meta.dill``.
    """
    import alibi.saving

    save_prefix, load_prefix = SAVING_PREFIXES
    setattr(alibi.saving, save_prefix + name, save)
    setattr(alibi.saving, load_prefix + name, load)


def mirror_meta(explainer: Any) -> None:
    """Copy every key of ``explainer.meta`` to an attribute of the same name, as alibi's ``Base`` does when made.

    Parameters
    ----------
    explainer
        An alibi explainer whose ``meta`` changed after it was made.
    """
    for key, value in explainer.meta.items():
        setattr(explainer, key, value)


def runtime_executor(runtime: Any) -> Executor:
    """The thread pool of an mlserver-alibi-explain runtime (made by ``AlibiExplainRuntimeBase.__init__``).

    Parameters
    ----------
    runtime
        An instance of a subclass of ``mlserver_alibi_explain.runtime.AlibiExplainRuntimeBase``.

    Returns
    -------
    executor
        The pool that runs its explanations and loading.
    """
    executor: Executor = runtime._executor
    return executor
