"""TensorFlow 2 backend: default Keras networks, one discriminator step, one generator step, forward pass, weights.

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
from typing import Any, Callable, Dict, List, Literal, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from alibi_countergan.backends.base import Backend, NetworkSpec, TrainingSpec, WeightFileError, brief_error
from alibi_countergan.backends.tf_compat import (
    Compiled,
    EagerExecutionRequiredError,
    repair_keras_classes,
    require_eager,
)
from alibi_countergan.constraints import SpaceTensors
from alibi_countergan.layout import ImageLayout
from alibi_countergan.value import ArraySpec, Batch, discriminator_objective, generator_objective

__all__ = ["TFBackend", "TFOps", "MLPGenerator", "MLPDiscriminator", "ConvGenerator", "ConvDiscriminator",
           "default_networks", "create_backend", "EagerExecutionRequiredError", "repair_keras_classes",
           "require_eager"]

_LEAK = 0.2
_layers = tf.keras.layers



class TFOps:
    """:class:`alibi_countergan.ops.Ops` on TensorFlow tensors."""

    def constant(self, value: np.ndarray) -> tf.Tensor:
        return tf.constant(np.asarray(value, dtype=np.float32))

    def softplus(self, x: tf.Tensor) -> tf.Tensor:
        return tf.math.softplus(x)

    def log(self, x: tf.Tensor) -> tf.Tensor:
        return tf.math.log(x)

    def relu(self, x: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu(x)

    def abs(self, x: tf.Tensor) -> tf.Tensor:
        return tf.abs(x)

    def square(self, x: tf.Tensor) -> tf.Tensor:
        return tf.square(x)

    def minimum(self, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        return tf.minimum(a, b)

    def maximum(self, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        return tf.maximum(a, b)

    def mean(self, x: tf.Tensor, axis: Optional[int] = None) -> tf.Tensor:
        return tf.reduce_mean(x, axis=axis)

    def sum(self, x: tf.Tensor, axis: Optional[int] = None) -> tf.Tensor:
        return tf.reduce_sum(x, axis=axis)

    def softmax(self, x: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(x, axis=-1)

    def one_hot_argmax(self, x: tf.Tensor) -> tf.Tensor:
        return tf.one_hot(tf.argmax(x, axis=-1), tf.shape(x)[-1], dtype=x.dtype)

    def nearest(self, x: tf.Tensor, grid: tf.Tensor) -> tf.Tensor:
        return tf.gather(grid, tf.argmin(tf.abs(x - grid[None, :]), axis=-1))[:, None]

    def positive(self, x: tf.Tensor) -> tf.Tensor:
        return tf.stop_gradient(tf.cast(x > 0, x.dtype))

    def stop_gradient(self, x: tf.Tensor) -> tf.Tensor:
        return tf.stop_gradient(x)

    def concat(self, xs: Sequence[tf.Tensor], axis: int = -1) -> tf.Tensor:
        return tf.concat(list(xs), axis=axis)

    def take_columns(self, x: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
        return tf.gather(x, index, axis=1, batch_dims=1)


# ---------------------------------------------------------------------------------------------
# Default networks: the PyTorch ones, in Keras. All take and return flat features; image
# networks reshape inside. Initialisers reproduce torch's defaults (uniform, bound 1/sqrt(fan_in)
# for weights and biases) and are seeded one by one, so building touches no global random state.
# ---------------------------------------------------------------------------------------------


class _Seeds:
    """Distinct initialiser seeds drawn from the build seed (a private generator, no global state)."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def __call__(self) -> int:
        return int(self._rng.integers(0, 2**31 - 1))


def _kernel_init(seeds: _Seeds, gain: float = 1.0) -> tf.keras.initializers.Initializer:
    """torch's default weight init, ``U(-b, b)`` with ``b = gain / sqrt(fan_in)`` (fan_in as torch counts it)."""
    return tf.keras.initializers.VarianceScaling(scale=gain**2 / 3.0, mode="fan_in", distribution="uniform",
                                               seed=seeds())


def _bias_init(seeds: _Seeds, fan_in: int) -> tf.keras.initializers.Initializer:
    """torch's default bias init, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    bound = 1.0 / float(np.sqrt(fan_in))
    return tf.keras.initializers.RandomUniform(-bound, bound, seed=seeds())


def _dense(units: int, fan_in: int, seeds: _Seeds, name: str, small: bool = False) -> tf.keras.layers.Dense:
    if small:  # start the generator near the identity counterfactual (residuals close to zero)
        return _layers.Dense(units, kernel_initializer=_kernel_init(seeds, 0.1), bias_initializer="zeros", name=name)
    return _layers.Dense(units, kernel_initializer=_kernel_init(seeds), bias_initializer=_bias_init(seeds, fan_in),
                         name=name)


def _conv(filters: int, kernel: int, stride: int, fan_in_channels: int, seeds: _Seeds, name: str,
          padding: Literal["valid", "same"] = "valid", small: bool = False) -> tf.keras.layers.Conv2D:
    bias = "zeros" if small else _bias_init(seeds, fan_in_channels * kernel * kernel)
    return _layers.Conv2D(filters, kernel, strides=stride, padding=padding,
                          kernel_initializer=_kernel_init(seeds, 0.1 if small else 1.0), bias_initializer=bias,
                          name=name)


def _conv_transpose(filters: int, kernel: int, stride: int, seeds: _Seeds, name: str) -> tf.keras.layers.Layer:
    # torch counts a transposed convolution's fan_in over its output channels, as Keras does
    return _layers.Conv2DTranspose(filters, kernel, strides=stride, padding="valid",
                                   kernel_initializer=_kernel_init(seeds),
                                   bias_initializer=_bias_init(seeds, filters * kernel * kernel), name=name)


def _leaky(x: tf.Tensor) -> tf.Tensor:
    return tf.nn.leaky_relu(x, alpha=_LEAK)


class MLPGenerator(tf.keras.Model):
    """Residual generator for feature vectors: ``[x_std, onehot(t), mask] -> u``."""

    def __init__(self, n_features: int, n_classes: int, hidden: Sequence[int] = (128, 128), seed: int = 0) -> None:
        super().__init__(name="mlp_generator")
        seeds = _Seeds(seed)
        width = 2 * n_features + n_classes
        self.body: List[tf.keras.layers.Dense] = []
        for i, h in enumerate(hidden):
            self.body.append(_dense(h, width, seeds, f"body_{i}"))
            width = h
        self.head = _dense(n_features, width, seeds, "head", small=True)

    def call(self, inputs: Sequence[tf.Tensor], training: Optional[bool] = None, mask: Any = None) -> tf.Tensor:
        """The residual ``u``, ``(B, n_features)``, for ``inputs = [x_std, target_onehot, free]``.

        ``free`` is the per-row mutability mask (1 where a feature may change). ``training`` and
        Keras's own ``mask`` argument are accepted for Keras's call convention and not used.
        """
        x_std, onehot, free = inputs
        h = tf.concat([x_std, free, onehot], axis=1)
        for layer in self.body:
            h = _leaky(layer(h))
        return self.head(h)


class MLPDiscriminator(tf.keras.Model):
    """Discriminator for feature vectors: ``x_std -> logits`` (one per output)."""

    def __init__(self, n_features: int, n_outputs: int, hidden: Sequence[int] = (128, 128), seed: int = 0) -> None:
        super().__init__(name="mlp_discriminator")
        seeds = _Seeds(seed)
        width = n_features
        self.body: List[tf.keras.layers.Dense] = []
        for i, h in enumerate(hidden):
            self.body.append(_dense(h, width, seeds, f"body_{i}"))
            width = h
        self.head = _dense(n_outputs, width, seeds, "head")

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None, mask: Any = None) -> tf.Tensor:
        """The logits, ``(B, n_outputs)``, for standardised flat features ``inputs``, ``(B, n_features)``.

        ``training`` and Keras's ``mask`` argument are accepted for Keras's call convention and not used.
        """
        h = inputs
        for layer in self.body:
            h = _leaky(layer(h))
        return self.head(h)


class _Layout:
    """Turns flat features into NHWC images and back (the user's layout may be channels-first)."""

    def __init__(self, image: ImageLayout) -> None:
        self.image = image
        h, w, c = image.height, image.width, image.channels
        self.user_shape = (h, w, c) if image.channels_last else (c, h, w)
        self.size = h * w * c

    def to_image(self, flat: tf.Tensor) -> tf.Tensor:
        x = tf.reshape(flat, (-1,) + self.user_shape)
        return x if self.image.channels_last else tf.transpose(x, (0, 2, 3, 1))

    def to_flat(self, image: tf.Tensor) -> tf.Tensor:
        x = image if self.image.channels_last else tf.transpose(image, (0, 3, 1, 2))
        return tf.reshape(x, (-1, self.size))


class ConvGenerator(tf.keras.Model):
    """Residual generator for images: a small encoder-decoder (two stride-2 stages each way).

    The PyTorch ``ConvGenerator`` in NHWC: explicit zero padding of 1 and transposed
    convolutions cropped by 1 reproduce torch's ``padding=1`` exactly (Keras's ``'same'`` pads
    differently for stride 2).
    """

    def __init__(self, image: ImageLayout, n_classes: int, width: int = 32, seed: int = 0) -> None:
        super().__init__(name="conv_generator")
        seeds = _Seeds(seed)
        self.layout = _Layout(image)
        c = image.channels
        self.pad = _layers.ZeroPadding2D(1)
        self.encode_1 = _conv(width, 4, 2, 2 * c + n_classes, seeds, "encode_1")
        self.encode_2 = _conv(2 * width, 4, 2, width, seeds, "encode_2")
        self.target_embedding = _dense(2 * width, n_classes, seeds, "target_embedding")
        self.up_1 = _conv_transpose(width, 4, 2, seeds, "up_1")
        self.up_2 = _conv_transpose(width // 2, 4, 2, seeds, "up_2")
        self.head = _conv(c, 3, 1, width // 2, seeds, "head", padding="same", small=True)

    def call(self, inputs: Sequence[tf.Tensor], training: Optional[bool] = None, mask: Any = None) -> tf.Tensor:
        """The residual ``u``, ``(B, n_features)``, for ``inputs = [x_std, target_onehot, free]``.

        ``free`` is the per-row mutability mask (1 where a feature may change). ``training`` and
        Keras's own ``mask`` argument are accepted for Keras's call convention and not used.
        """
        x_std, onehot, free = inputs
        image = self.layout.to_image(x_std)
        height, width = self.layout.image.height, self.layout.image.width
        planes = tf.broadcast_to(onehot[:, None, None, :], tf.concat([tf.shape(image)[:3], tf.shape(onehot)[1:]], 0))
        h = tf.concat([image, self.layout.to_image(free), planes], axis=-1)
        # zeros below and to the right up to multiples of 4, so that any image size comes back whole
        h = tf.pad(h, [[0, 0], [0, -height % 4], [0, -width % 4], [0, 0]])
        h = _leaky(self.encode_1(self.pad(h)))
        h = _leaky(self.encode_2(self.pad(h)))
        h = h + self.target_embedding(onehot)[:, None, None, :]
        h = _leaky(self.up_1(h)[:, 1:-1, 1:-1, :])[:, : (height + 1) // 2, : (width + 1) // 2, :]
        h = _leaky(self.up_2(h)[:, 1:-1, 1:-1, :])[:, :height, :width, :]
        return self.layout.to_flat(self.head(h))


class ConvDiscriminator(tf.keras.Model):
    """Discriminator for images: three stride-2 convolutions and a dense head (torch's, in NHWC)."""

    def __init__(self, image: ImageLayout, n_outputs: int, width: int = 64, seed: int = 0) -> None:
        super().__init__(name="conv_discriminator")
        seeds = _Seeds(seed)
        self.layout = _Layout(image)
        self.pad = _layers.ZeroPadding2D(1)
        self.convs = [_conv(width, 3, 2, image.channels if i == 0 else width, seeds, f"conv_{i}") for i in range(3)]
        h, w = image.height, image.width
        for _ in range(3):
            h, w = (h + 1) // 2, (w + 1) // 2
        self.flatten = _layers.Flatten()
        self.head = _dense(n_outputs, width * h * w, seeds, "head")

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None, mask: Any = None) -> tf.Tensor:
        """The logits, ``(B, n_outputs)``, for standardised flat features ``inputs``, ``(B, n_features)``.

        ``training`` and Keras's ``mask`` argument are accepted for Keras's call convention and not used.
        """
        h = self.layout.to_image(inputs)
        for conv in self.convs:
            h = _leaky(conv(self.pad(h)))
        return self.head(self.flatten(h))


def default_networks(spec: NetworkSpec, seed: int) -> Tuple[tf.keras.Model, tf.keras.Model]:
    """The default generator and discriminator for ``spec`` (MLPs for vectors, CNNs for images).

    Parameters
    ----------
    spec
        Sizes of the data and of the networks' outputs.
    seed
        Seed of the initialisers (the generator and the discriminator get independent streams).

    Returns
    -------
    The generator and the discriminator, unbuilt (weights are created on the first call).
    """
    g_seed, d_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
    if spec.image is None:
        return (MLPGenerator(spec.n_features, spec.n_classes, seed=g_seed),
                MLPDiscriminator(spec.n_features, spec.discriminator_outputs, seed=d_seed))
    return (ConvGenerator(spec.image, spec.n_classes, seed=g_seed),
            ConvDiscriminator(spec.image, spec.discriminator_outputs, seed=d_seed))


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
        if generator is None or discriminator is None:
            default_g, default_d = default_networks(network, seed)
            generator = default_g if generator is None else generator
            discriminator = default_d if discriminator is None else discriminator
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
                                                  self.space, spec.weights, residual=spec.residual)
            else:
                loss, parts = discriminator_objective(self.ops, generator_fn, discriminator_fn, batch, self.space,
                                                      residual=spec.residual)
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
