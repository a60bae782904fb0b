"""PyTorch's implementation of the array operations the framework-free value functions use
(:class:`alibi_countergan.ops.Ops`).
"""
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["TorchOps"]


class TorchOps:
    """:class:`alibi_countergan.ops.Ops` on torch tensors."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def constant(self, value: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(value, dtype=np.float32), device=self.device)

    def softplus(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x)

    def log(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)

    def relu(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)

    def abs(self, x: torch.Tensor) -> torch.Tensor:
        return torch.abs(x)

    def square(self, x: torch.Tensor) -> torch.Tensor:
        return torch.square(x)

    def minimum(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.minimum(a, b)

    def maximum(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.maximum(a, b)

    def mean(self, x: torch.Tensor, axis: Optional[int] = None) -> torch.Tensor:
        return x.mean() if axis is None else x.mean(dim=axis)

    def sum(self, x: torch.Tensor, axis: Optional[int] = None) -> torch.Tensor:
        return x.sum() if axis is None else x.sum(dim=axis)

    def softmax(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)

    def one_hot_argmax(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(x.argmax(dim=-1), x.shape[-1]).to(x.dtype)

    def nearest(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return grid[torch.abs(x - grid[None, :]).argmin(dim=-1)][:, None]

    def positive(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).to(x.dtype)

    def stop_gradient(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach()

    def concat(self, xs: Sequence[torch.Tensor], axis: int = -1) -> torch.Tensor:
        return torch.cat(list(xs), dim=axis)

    def take_columns(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return x.gather(1, index[:, None])[:, 0]
