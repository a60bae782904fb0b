"""TensorFlow 2 backend: one discriminator step, one generator step, forward pass, weights.

The array operations are in :mod:`alibi_countergan.backends.tf_ops`, the default Keras networks in
:mod:`alibi_countergan.backends.tf_networks`.

It mirrors :mod:`alibi_countergan.backends.pytorch` line by line: the same default architectures
(with the same initialisation distributions), the same value functions from
:mod:`alibi_countergan.value` evaluated under a ``tf.GradientTape``, and Adam with the same
settings. Training steps and the forward pass of ``explain`` are ``tf.function``-compiled with
fixed input signatures, so they are traced once per explainer, whatever the batch size.

Everything runs in eager TensorFlow 2. Nothing here changes process-wide TensorFlow state: no
``disable_eager_execution``, no global seed (initialisers are seeded one by one), no Keras
session. When eager execution is off (someone called ``tf.compat.v1.disable_eager_execution()``,
as alibi's TF1 explainers ask, or the code runs inside ``tf.Graph().as_default()``) the backend
refuses to run with :class:`~alibi_countergan.backends.tf_compat.EagerExecutionRequiredError`,
which explains the alternative. TensorFlow's and Keras's private internals are reached only
through :mod:`alibi_countergan.backends.tf_compat`, whose workarounds this module re-exports.
"""

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from alibi_countergan.backends.base import Backend, NetworkSpec, TrainingSpec, WeightFileError, brief_error
from alibi_countergan.backends.tf_compat import (
    Compiled,
    EagerExecutionRequiredError,
    repair_keras_classes,
    require_eager,
)
from alibi_countergan.backends.tf_networks import (
    ConvDiscriminator,
    ConvGenerator,
    MLPDiscriminator,
    MLPGenerator,
    PlainGANGenerator,
    build_networks,
    default_networks,
)
from alibi_countergan.backends.tf_ops import TFOps
from alibi_countergan.constraints import SpaceTensors
from alibi_countergan.value import ArraySpec, Batch, discriminator_objective, generator_objective

__all__ = ["TFBackend", "TFOps", "MLPGenerator", "MLPDiscriminator", "ConvGenerator", "ConvDiscriminator",
           "PlainGANGenerator", "default_networks", "create_backend", "EagerExecutionRequiredError",
           "repair_keras_classes", "require_eager"]


def _tensor_spec(spec: ArraySpec) -> tf.TensorSpec:
    return tf.TensorSpec(spec.shape, tf.as_dtype(spec.dtype), name=spec.name)


def _weight_names(net: tf.keras.layers.Layer) -> List[str]:
    """Names of a network's weights without the network's own (process-dependent) prefix, made unique."""
    prefix = net.name + "/"
    names: List[str] = []
    for i, w in enumerate(net.weights):
        name = w.name[:-2] if w.name.endswith(":0") else w.name
        name = name[len(prefix):] if name.startswith(prefix) else name
        names.append(name if name not in names else f"{name}#{i}")
    return names


class TFBackend:
    """The TensorFlow 2 implementation of :class:`alibi_countergan.backends.base.Backend`."""

    name = "tensorflow"

    def __init__(self) -> None:
        require_eager()
        self.generator: Optional[tf.keras.layers.Layer] = None
        self.discriminator: Optional[tf.keras.layers.Layer] = None
        self._predictor: Any = None
        self._built = False
        self._predict_fns: Dict[Tuple[int, Tuple[int, ...]], Tuple[Any, Callable[[np.ndarray], Any]]] = {}

    @property
    def predictor(self) -> Any:
        """The white-box predictor (a ``tf.keras.Model``), or None in black-box mode."""
        return self._predictor

    def set_predictor(self, predictor: Any) -> None:
        """Replace the white-box predictor; it is compiled into the generator step, which is traced again."""
        self._predictor = predictor
        if self._built:
            self._compile()

    def build(self, network: NetworkSpec, training: TrainingSpec, predictor: Any, seed: int,
              generator: Any = None, discriminator: Any = None) -> None:
        require_eager()
        for net, what in ((generator, "generator"), (discriminator, "discriminator")):
            if net is not None and not isinstance(net, tf.keras.layers.Layer):
                raise ValueError(f"The tensorflow backend needs the {what} to be a tf.keras.Model, "
                                 f"got {type(net).__name__}.")
        if predictor is not None and not isinstance(predictor, tf.keras.Model):
            raise ValueError(f"White-box training with the tensorflow backend needs a tf.keras.Model predictor, "
                             f"got {type(predictor).__name__}.")
        self.network, self.training = network, training
        self.ops = TFOps()
        self.space: SpaceTensors = training.space.tensors(self.ops)
        generator, discriminator = build_networks(network, seed, generator, discriminator)
        self.generator, self.discriminator = generator, discriminator
        repair_keras_classes(generator, discriminator, predictor)
        n, k = network.n_features, network.n_classes
        zeros = tf.zeros((1, n), tf.float32)
        generator([zeros, tf.zeros((1, k), tf.float32), zeros], training=False)  # creates the weights
        discriminator(zeros, training=False)
        self.g_vars = list(generator.trainable_variables)
        self.d_vars = list(discriminator.trainable_variables)
        for variables, what in ((self.g_vars, "generator"), (self.d_vars, "discriminator")):
            if not variables:
                raise ValueError(f"The {what} has no trainable weights.")

        def adam(rate: float) -> tf.keras.optimizers.Optimizer:  # torch's Adam defaults, beta_1 from the spec
            return tf.keras.optimizers.Adam(learning_rate=rate, beta_1=training.beta_1, beta_2=0.999, epsilon=1e-8)

        self.g_optimizer = adam(training.learning_rate_generator)
        self.d_optimizer = adam(training.learning_rate_discriminator)
        self.g_optimizer.build(self.g_vars)
        self.d_optimizer.build(self.d_vars)
        self._predictor = predictor
        self._built = True
        self._compile()

    # ------------------------------------------------------------------------------------------
    # compiled functions
    # ------------------------------------------------------------------------------------------

    def _compile(self) -> None:
        """Trace-once ``tf.function`` s for the two steps and the forward pass (fixed input signatures)."""
        net = self.network
        specs = Batch.specs(net.n_features, net.n_classes, net.discriminator_outputs).map(_tensor_spec)
        batch_signature = [specs.as_dict()]  # one argument: the batch's fields by name
        generator, discriminator = self.generator, self.discriminator
        assert generator is not None and discriminator is not None

        # the Python bodies below run only while tracing: repair_keras_classes costs nothing per call
        def d_step(arrays: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
            repair_keras_classes(generator, discriminator)
            return self._step(Batch(**arrays), generator=False)

        def g_step(arrays: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
            repair_keras_classes(generator, discriminator, self._predictor)
            return self._step(Batch(**arrays), generator=True)

        def forward(x_std: tf.Tensor, onehot: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
            repair_keras_classes(generator)
            return generator([x_std, onehot, mask], training=False)

        self._d_step = tf.function(d_step, input_signature=batch_signature)
        self._g_step = tf.function(g_step, input_signature=batch_signature)
        self._forward = tf.function(forward, input_signature=[specs.x_std, specs.target_onehot, specs.mask])
        # traced once here; a call then skips tf.function's dispatch and argument binding, which
        # cost more than running the small graphs of one explanation
        self._d_step_fn: Compiled = Compiled(self._d_step)
        self._g_step_fn: Compiled = Compiled(self._g_step)
        self._forward_fn: Compiled = Compiled(self._forward, inline=True)

    def _step(self, batch: "Batch[tf.Tensor]", generator: bool) -> Dict[str, tf.Tensor]:
        """One update of the generator (or of the discriminator) on a batch of tensors (runs while tracing)."""
        g_net, d_net, spec = self.generator, self.discriminator, self.training
        assert g_net is not None and d_net is not None

        def generator_fn(x_std: tf.Tensor, onehot: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
            return g_net([x_std, onehot, mask], training=True)

        def discriminator_fn(x_std: tf.Tensor) -> tf.Tensor:
            return d_net(x_std, training=True)

        variables, optimizer = (self.g_vars, self.g_optimizer) if generator else (self.d_vars, self.d_optimizer)
        # only the updated network's weights are watched: the predictor's never get a gradient
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            if generator:
                loss, parts = generator_objective(self.ops, generator_fn, discriminator_fn, self._classifier(), batch,
                                                  self.space, spec.weights)
            else:
                loss, parts = discriminator_objective(self.ops, generator_fn, discriminator_fn, batch, self.space)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return parts

    def _classifier(self) -> Optional[Callable[[tf.Tensor], tf.Tensor]]:
        """The white-box predictor on flat features, as float32 probabilities; None in black-box mode."""
        if not self.training.white_box:
            return None
        model, shape = self._predictor, (-1,) + tuple(self.network.feature_shape)

        def classifier(x: tf.Tensor) -> tf.Tensor:
            return tf.cast(model(tf.reshape(x, shape), training=False), tf.float32)

        return classifier

    # ------------------------------------------------------------------------------------------
    # the Backend surface
    # ------------------------------------------------------------------------------------------

    def _check_built(self) -> None:
        if not self._built:
            raise RuntimeError("The tensorflow backend is not built: call build() first.")
        require_eager()

    def discriminator_step(self, batch: "Batch[np.ndarray]") -> Dict[str, float]:
        self._check_built()
        parts = self._d_step_fn(batch.as_dict())
        return {key: float(value) for key, value in parts.items()}

    def generator_step(self, batch: "Batch[np.ndarray]") -> Dict[str, float]:
        self._check_built()
        parts = self._g_step_fn(batch.as_dict())
        return {key: float(value) for key, value in parts.items()}

    def generate(self, x_std: np.ndarray, target_onehot: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self._check_built()
        u: np.ndarray = self._forward_fn(x_std, target_onehot, mask).numpy()
        return u

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        """The model's output for numpy inputs, from a compiled call of ``model(x, training=False)``.

        The compiled call is traced once per model and instance shape, so that small batches do
        not pay Keras's per-call overhead (``model.predict`` is never used).
        """
        require_eager()
        x32 = np.asarray(x, dtype=np.float32)
        key = (id(model), x32.shape[1:])
        cached = self._predict_fns.get(key)
        if cached is None or cached[0] is not model:
            if len(self._predict_fns) >= 8:
                self._predict_fns.clear()

            def call(inputs: tf.Tensor) -> tf.Tensor:
                repair_keras_classes(model)
                return model(inputs, training=False)

            signature = [tf.TensorSpec((None,) + x32.shape[1:], tf.float32)]
            cached = (model, Compiled(tf.function(call, input_signature=signature), inline=True))
            self._predict_fns[key] = cached
        out = cached[1](x32)
        return np.asarray(out.numpy() if hasattr(out, "numpy") else out)

    def get_weights(self) -> Dict[str, np.ndarray]:
        assert self.generator is not None and self.discriminator is not None
        out = {}
        for prefix, net in (("generator", self.generator), ("discriminator", self.discriminator)):
            for name, w in zip(_weight_names(net), net.weights):
                out[f"{prefix}/{name}"] = np.array(w.numpy(), copy=True)
        return out

    def set_weights(self, weights: Dict[str, np.ndarray]) -> None:
        assert self.generator is not None and self.discriminator is not None
        updates = []  # everything is checked before anything is written
        for prefix, net in (("generator", self.generator), ("discriminator", self.discriminator)):
            names = _weight_names(net)
            given = {k[len(prefix) + 1:]: v for k, v in weights.items() if k.startswith(prefix + "/")}
            missing, unexpected = sorted(set(names) - set(given)), sorted(set(given) - set(names))
            if missing or unexpected:
                raise ValueError(f"The {prefix}'s weights do not match: missing {missing}, unexpected {unexpected}.")
            for name, w in zip(names, net.weights):
                value = np.asarray(given[name])
                if tuple(value.shape) != tuple(w.shape):
                    raise ValueError(f"The {prefix}'s weight {name} has shape {tuple(w.shape)}, got {value.shape}.")
                updates.append((w, value.astype(w.dtype.as_numpy_dtype)))
        for w, value in updates:
            w.assign(value)

    # -- weight files (alibi_countergan.backends.base.WeightFiles): TensorFlow's own checkpoint format --

    weight_format = "tf.keras.checkpoint"

    def write_weights(self, weights: Mapping[str, np.ndarray], directory: Path) -> List[str]:
        """Write each network with ``save_weights`` in TensorFlow's checkpoint format.

        The networks are first set to ``weights`` (normally their own current values), so the files
        hold exactly what was asked for; each network loads them back with ``load_weights``.
        """
        assert self.generator is not None and self.discriminator is not None
        stray = [k for k in weights if k.split("/", 1)[0] not in ("generator", "discriminator")]
        if stray:
            raise ValueError(f"Weights outside the generator and the discriminator cannot be saved: {stray[:5]}.")
        self.set_weights(dict(weights))
        files: List[str] = []
        for prefix, net in (("generator", self.generator), ("discriminator", self.discriminator)):
            before = set(os.listdir(directory))
            net.save_weights(str(Path(directory) / f"{prefix}.ckpt"), save_format="tf")
            files += sorted(set(os.listdir(directory)) - before - {"checkpoint"})
        return files

    def read_weights(self, directory: Path, files: Sequence[str]) -> Dict[str, np.ndarray]:
        """Inverse of :meth:`write_weights` (the networks must be built); returns the loaded weights."""
        assert self.generator is not None and self.discriminator is not None
        for prefix, net in (("generator", self.generator), ("discriminator", self.discriminator)):
            if f"{prefix}.ckpt.index" not in files:
                raise ValueError(f"The saved weights list no {prefix}.ckpt checkpoint.")
            checkpoint = Path(directory) / f"{prefix}.ckpt"
            try:
                status = net.load_weights(str(checkpoint))
                status.assert_existing_objects_matched()
            except Exception as err:  # truncated, empty or foreign checkpoint files: all one error
                shards = sorted(f for f in files if f.startswith(f"{prefix}.ckpt."))
                raise WeightFileError(checkpoint.with_name(f"{prefix}.ckpt.index"),
                                      f"the checkpoint {', '.join(shards)} could not be restored "
                                      f"({brief_error(err)})") from None
        return self.get_weights()


def create_backend() -> Backend:
    """A fresh, unbuilt TensorFlow backend (typed as the protocol, so mypy checks that it is one).

    Raises
    ------
    EagerExecutionRequiredError
        When TensorFlow's eager execution is off.
    """
    return TFBackend()
