"""The default Keras networks: the PyTorch ones (:mod:`alibi_countergan.backends.torch_networks`), with the
same architectures and initialisation distributions, seeded one initialiser at a time.
"""

from typing import Any, List, Literal, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from alibi_countergan.backends.base import NetworkSpec
from alibi_countergan.backends.tf_compat import repair_keras_classes
from alibi_countergan.layout import ImageLayout

__all__ = ["MLPGenerator", "MLPDiscriminator", "ConvGenerator", "ConvDiscriminator", "PlainGANGenerator",
           "default_networks", "build_networks"]

_LEAK = 0.2
_layers = tf.keras.layers

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


class PlainGANGenerator(tf.keras.Model):
    """A generator that outputs the whole counterfactual, presented as a residual: ``G(x_std, t, mask) - x_std``.

    The paper's plain "GAN" baseline (``NetworkSpec.plain_gan``, the explainer's ``residual=False``).
    It adds no weights and is named after the wrapped network, which it builds first, outside its
    own name scope: its weights have the wrapped network's names, and ``save_weights`` and
    ``load_weights`` are the wrapped network's, so its checkpoints are the wrapped network's too.

    Parameters
    ----------
    generator
        The network wrapped (the default generator or the user's).
    spec
        The sizes of the generator's inputs (to build it).
    """

    def __init__(self, generator: tf.keras.layers.Layer, spec: NetworkSpec) -> None:
        super().__init__(name=generator.name)
        repair_keras_classes(generator)
        zeros = tf.zeros((1, spec.n_features), tf.float32)
        generator([zeros, tf.zeros((1, spec.n_classes), tf.float32), zeros], training=False)  # creates its weights
        self.generator = generator

    def call(self, inputs: Sequence[tf.Tensor], training: Optional[bool] = None, mask: Any = None) -> tf.Tensor:
        """The wrapped generator's output less ``x_std``, for ``inputs = [x_std, target_onehot, free]``.

        ``training`` is passed on; Keras's own ``mask`` argument is accepted for its call convention and not used.
        """
        output = self.generator(inputs) if training is None else self.generator(inputs, training=training)
        return output - inputs[0]

    def save_weights(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped network's ``save_weights``."""
        return self.generator.save_weights(*args, **kwargs)

    def load_weights(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped network's ``load_weights``."""
        return self.generator.load_weights(*args, **kwargs)


def build_networks(spec: NetworkSpec, seed: int, generator: Optional[tf.keras.layers.Layer] = None,
                   discriminator: Optional[tf.keras.layers.Layer] = None
                   ) -> Tuple[tf.keras.layers.Layer, tf.keras.layers.Layer]:
    """The generator and discriminator a backend trains: the given ones, or the defaults for ``spec``.

    With ``spec.plain_gan`` the generator is wrapped in a :class:`PlainGANGenerator` (which builds it).
    """
    if generator is None or discriminator is None:
        default_g, default_d = default_networks(spec, seed)
        generator = default_g if generator is None else generator
        discriminator = default_d if discriminator is None else discriminator
    return (PlainGANGenerator(generator, spec) if spec.plain_gan else generator), discriminator
