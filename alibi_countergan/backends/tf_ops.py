"""TensorFlow's implementation of the array operations the framework-free value functions use
(:class:`alibi_countergan.ops.Ops`).
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

__all__ = ["TFOps"]


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
