"""Every use of TensorFlow's and Keras's private internals, in one place, each gated by version.

The TensorFlow backend (:mod:`alibi_countergan.backends.tensorflow`) reaches TensorFlow only
through public APIs and through the helpers below. Each helper says which versions need it and
takes the public route outside them, so a new TensorFlow or Keras degrades to the slower or
less precise public behaviour instead of breaking. The package pins ``tensorflow>=2.12,<2.15``
(alibi 0.9.6 needs TensorFlow below 2.15, so ``tf.keras`` is Keras 2); the helpers are tested
with TensorFlow 2.14 and Keras 2.14.
"""

import logging
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

TF_VERSION: Tuple[int, int] = tuple(int(p) for p in tf.__version__.split(".")[:2])  # type: ignore[assignment]
"""TensorFlow's ``(major, minor)`` version."""


def _keras_version() -> Tuple[int, int]:
    try:
        import keras
    except ImportError:  # pragma: no cover - tf.keras without a keras package
        return (0, 0)
    return tuple(int(p) for p in keras.__version__.split(".")[:2])  # type: ignore[return-value]


KERAS_VERSION: Tuple[int, int] = _keras_version()
"""The ``(major, minor)`` version of the ``keras`` package behind ``tf.keras`` ((0, 0) when there is none)."""


class EagerExecutionRequiredError(RuntimeError):
    """The TensorFlow backend was used while TensorFlow's eager execution was off."""


_EAGER_HELP = """\
The TensorFlow backend of CounteRGAN needs eager TensorFlow 2, but eager execution is off here: {why}.

alibi's TF1 explainers (CounterfactualProto, Counterfactual, CEM) are usually run after
`tf.compat.v1.disable_eager_execution()`, which is process-wide and cannot be undone. Instead,
keep eager execution on and run the TF1 explainer in a private graph and session:

    graph = tf.Graph()
    with graph.as_default():
        sess = tf.compat.v1.Session(graph=graph)
        tf.compat.v1.keras.backend.set_session(sess)
        model = ...  # build or load the Keras model inside the graph
        cf = CounterfactualProto(model, shape, ..., sess=sess)
        explanation = cf.explain(X)

CounteRGAN, outside that block, then works in the same process (or run the TF1 explainer in a
separate process). See docs/tensorflow.md."""


def _eager_disabled_for_the_process() -> bool:
    """Whether ``tf.compat.v1.disable_eager_execution()`` was called (rather than a graph block being open).

    Workaround, TensorFlow 2.x (checked on 2.12 to 2.14): TensorFlow has no public way to tell
    the two apart; the private ``context.default_execution_mode`` records the process-wide switch.
    Where it is missing, the answer is "disabled", which only changes the wording of the error.
    """
    try:
        from tensorflow.python.eager import context  # type: ignore[attr-defined]  # private: not in the stubs
    except ImportError:  # pragma: no cover - private module moved
        return True
    mode = getattr(context, "default_execution_mode", None)
    return mode is None or mode != getattr(context, "EAGER_MODE", mode)


def require_eager() -> None:
    """Raise :class:`EagerExecutionRequiredError` unless TensorFlow executes eagerly here.

    Raises
    ------
    EagerExecutionRequiredError
        With the reason and how to run alibi's TF1 explainers without disabling eager execution.
    """
    if tf.executing_eagerly():
        return
    why = ("`tf.compat.v1.disable_eager_execution()` was called in this process" if _eager_disabled_for_the_process()
           else "this code runs inside a `tf.Graph().as_default()` block (or a TF1 session context); "
                "call CounteRGAN outside it")
    raise EagerExecutionRequiredError(_EAGER_HELP.format(why=why))


def _keras_engine() -> Optional[Tuple[Any, Any, Any, Any, Any]]:
    """Keras 2's private modules ``base_layer``, ``base_layer_v1``, ``training``, ``training_v1``, ``version_utils``.

    Keras 2.13 to 2.15 keep them under ``keras.src``, Keras 2.12 under ``keras``; Keras 3 has no
    TF1 classes (and nothing to repair): None there.
    """
    if KERAS_VERSION >= (3, 0) or KERAS_VERSION < (2, 12):
        return None
    try:
        if KERAS_VERSION >= (2, 13):
            from keras.src.engine import base_layer, base_layer_v1, training, training_v1
            from keras.src.utils import version_utils
        else:  # pragma: no cover - Keras 2.12
            from keras.engine import base_layer, base_layer_v1, training, training_v1
            from keras.utils import version_utils
    except ImportError:  # pragma: no cover - a Keras 2 release that moved them
        return None
    return base_layer, base_layer_v1, training, training_v1, version_utils


def repair_keras_classes(*models: Any) -> None:
    """Make Keras models built in eager mode callable again after Keras models were built in a TF1 graph.

    Workaround, Keras 2.12 to 2.15 (TensorFlow below 2.16): Keras 2 picks the TF1 or TF2
    implementation of a layer class when an instance is created, by rewriting the class's bases
    for the whole process: building a Keras model inside ``tf.Graph().as_default()`` (as alibi's
    TF1 explainers need) turns ``Model``, ``Dense`` and the other classes it uses into their TF1
    versions, and every model built before, outside the graph, then fails with "Your Layer or
    Model is in an invalid state". This puts the TF2 bases back for the classes of ``models`` and
    of their layers, as Keras itself does when it creates an instance in eager mode. Models built
    inside a graph are left alone. The TensorFlow backend calls it before it builds or traces a
    network or a predictor; call it for your own eager Keras models after such a graph block.
    A no-op with Keras 3.

    Parameters
    ----------
    models
        Keras models or layers (other objects are ignored).
    """
    engine = _keras_engine()
    if engine is None:
        return
    base_layer, base_layer_v1, training, training_v1, version_utils = engine
    for model in models:
        if not isinstance(model, tf.Module):
            continue
        for layer in (model, *model.submodules):
            if isinstance(layer, (base_layer_v1.Layer, training_v1.Model)) and not getattr(
                    layer, "_originally_built_as_v1", False):
                version_utils.swap_class(type(layer), training.Model, training_v1.Model, True)
                version_utils.swap_class(type(layer), base_layer.Layer, base_layer_v1.Layer, True)


def _flat_caller(function: Any) -> Callable[[List[tf.Tensor]], Any]:
    """A call of a concrete function on tensors that already match its signature, skipping argument binding.

    Workaround, TensorFlow 2.12 to 2.14: ``ConcreteFunction.__call__`` binds its arguments to the
    signature in Python on every call, which costs about as much as running the small graphs of
    one explanation; the private ``_call_flat(tensors, captured_inputs)`` runs the graph directly.
    Other versions (whose ``_call_flat`` may take other arguments) use the public call.
    """
    flat = getattr(function, "_call_flat", None)
    if (2, 12) <= TF_VERSION <= (2, 14) and flat is not None:
        return lambda tensors: flat(tensors, function.captured_inputs)
    return lambda tensors: function(*tensors)  # pragma: no cover - another TensorFlow


class Compiled:
    """A traced ``tf.function``, called with numpy arrays (or nests of them) in its signature's dtypes.

    The arrays are flattened with ``tf.nest`` in the order of the signature's own flattening, made
    into tensors of the signature's dtypes, and passed to the traced graph by :func:`_flat_caller`.

    With ``inline``, the graph runs on TensorFlow's single-threaded executor (chosen per call with
    the public, experimental ``tf.experimental.function_executor_type``; nothing process-wide): the
    operations run one after the other on the calling thread (each kernel still uses TensorFlow's
    intra-op threads), which saves the hand-over to the inter-op thread pool that dominates a small
    graph's run. If a graph needs the default executor, its first call falls back to it for good.

    Parameters
    ----------
    function
        A ``tf.function`` with a fixed ``input_signature``.
    inline
        Whether to run on the single-threaded executor.
    """

    def __init__(self, function: Any, inline: bool = False) -> None:
        concrete = function.get_concrete_function()
        self.name: str = concrete.name
        self._run = _flat_caller(concrete)
        specs: Sequence[tf.TensorSpec] = tf.nest.flatten(function.input_signature)
        self.dtypes = [np.dtype(spec.dtype.as_numpy_dtype) for spec in specs]
        self.inline = inline
        self._inline_works = False

    def __call__(self, *arrays: Any) -> Any:
        flat = tf.nest.flatten(arrays)
        tensors = [tf.constant(np.asarray(a, dtype=d)) for a, d in zip(flat, self.dtypes)]
        if self.inline:
            try:
                with tf.experimental.function_executor_type("SINGLE_THREADED_EXECUTOR"):
                    out = self._run(tensors)
            except Exception as err:
                if self._inline_works:
                    raise
                logger.info("%s needs the default executor (%s).", self.name, err)
                self.inline = False
            else:
                self._inline_works = True
                return out
        return self._run(tensors)
