"""The handful of array operations the core needs from a framework.

The value functions (:mod:`alibi_countergan.value`) and the constraint projection
(:mod:`alibi_countergan.constraints`) are written once against the :class:`Ops` protocol.
Each backend supplies an implementation for its tensors, and :data:`NUMPY_OPS` runs the same
code on numpy arrays for the exact projection of the counterfactuals ``explain`` returns.
This is how the algorithm stays in one place while the gradients come from the framework.
"""

from typing import Any, Protocol, Sequence

import numpy as np

Tensor = Any
"""A framework's array type (``np.ndarray``, ``torch.Tensor`` or ``tf.Tensor``)."""


class Ops(Protocol):
    """Element-wise and reduction operations with identical meaning in every framework.

    Every method takes and returns the framework's tensors. Shapes follow numpy's
    broadcasting rules; ``axis`` arguments count from 0.
    """

    def constant(self, value: np.ndarray) -> Tensor:
        """Turn a float32 numpy array into a constant tensor of the framework."""

    def softplus(self, x: Tensor) -> Tensor:
        """``log(1 + exp(x))``, computed without overflow."""

    def log(self, x: Tensor) -> Tensor:
        """Natural logarithm."""

    def relu(self, x: Tensor) -> Tensor:
        """``max(x, 0)``."""

    def abs(self, x: Tensor) -> Tensor:
        """Absolute value."""

    def square(self, x: Tensor) -> Tensor:
        """``x * x``."""

    def minimum(self, a: Tensor, b: Tensor) -> Tensor:
        """Element-wise minimum."""

    def maximum(self, a: Tensor, b: Tensor) -> Tensor:
        """Element-wise maximum."""

    def mean(self, x: Tensor, axis: "int | None" = None) -> Tensor:
        """Mean over ``axis`` (all axes when None)."""

    def sum(self, x: Tensor, axis: "int | None" = None) -> Tensor:
        """Sum over ``axis`` (all axes when None)."""

    def softmax(self, x: Tensor) -> Tensor:
        """Softmax over the last axis."""

    def one_hot_argmax(self, x: Tensor) -> Tensor:
        """A one-hot tensor (same dtype as ``x``) marking the largest entry of the last axis."""

    def nearest(self, x: Tensor, grid: Tensor) -> Tensor:
        """For a column ``x`` of shape ``(B, 1)``, the entry of the 1-D ``grid`` closest to each value."""

    def positive(self, x: Tensor) -> Tensor:
        """1.0 where ``x > 0``, else 0.0 (same dtype as ``x``; no gradient)."""

    def stop_gradient(self, x: Tensor) -> Tensor:
        """The same values, with no gradient flowing back through them."""

    def concat(self, xs: Sequence[Tensor], axis: int = -1) -> Tensor:
        """Concatenate along ``axis``."""

    def take_columns(self, x: Tensor, index: Tensor) -> Tensor:
        """For ``x`` of shape ``(B, K)`` and integer ``index`` of shape ``(B,)``, ``x[i, index[i]]``."""


class NumpyOps:
    """:class:`Ops` on numpy arrays (float32 in, float32 out)."""

    def constant(self, value: np.ndarray) -> np.ndarray:
        return np.asarray(value, dtype=np.float32)

    def softplus(self, x: np.ndarray) -> np.ndarray:
        return np.logaddexp(np.float32(0.0), x)

    def log(self, x: np.ndarray) -> np.ndarray:
        return np.log(x)

    def relu(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, np.float32(0.0))

    def abs(self, x: np.ndarray) -> np.ndarray:
        return np.abs(x)

    def square(self, x: np.ndarray) -> np.ndarray:
        return np.square(x)

    def minimum(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.minimum(a, b)

    def maximum(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.maximum(a, b)

    def mean(self, x: np.ndarray, axis: "int | None" = None) -> np.ndarray:
        return np.mean(x, axis=axis)

    def sum(self, x: np.ndarray, axis: "int | None" = None) -> np.ndarray:
        return np.sum(x, axis=axis)

    def softmax(self, x: np.ndarray) -> np.ndarray:
        shifted = np.exp(x - x.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)

    def one_hot_argmax(self, x: np.ndarray) -> np.ndarray:
        hot = np.zeros(x.shape, dtype=x.dtype)  # C-contiguous, so that the reshape below is a view
        flat = hot.reshape(-1, x.shape[-1])
        flat[np.arange(len(flat)), x.reshape(-1, x.shape[-1]).argmax(axis=-1)] = 1.0
        return hot

    def nearest(self, x: np.ndarray, grid: np.ndarray) -> np.ndarray:
        index = np.abs(x - grid[None, :]).argmin(axis=-1)
        return grid[index][:, None]

    def positive(self, x: np.ndarray) -> np.ndarray:
        return (x > 0).astype(x.dtype)

    def stop_gradient(self, x: np.ndarray) -> np.ndarray:
        return x

    def concat(self, xs: Sequence[np.ndarray], axis: int = -1) -> np.ndarray:
        return np.concatenate(list(xs), axis=axis)

    def take_columns(self, x: np.ndarray, index: np.ndarray) -> np.ndarray:
        return np.take_along_axis(x, np.asarray(index)[:, None], axis=1)[:, 0]


NUMPY_OPS = NumpyOps()
"""The numpy implementation of :class:`Ops`, used for the exact output projection."""
