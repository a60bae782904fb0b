"""Small PyTorch classifiers: one recipe and one training loop for the demo, the tests and the benchmarks.

:func:`mlp` builds a softmax MLP whose first layer standardises raw features, :func:`train`
trains any softmax ``torch.nn.Module`` on the negative log-likelihood, and :func:`numpy_predictor`
wraps a model as the plain numpy function a black-box explainer calls. Training is a function of
the seed alone: the weights are re-initialised from it and the batches are drawn by a numpy
generator seeded with it, and PyTorch's global random state is left as it was.

PyTorch is imported inside the functions; without it they raise an ImportError naming the extra
that installs it.
"""

import importlib.util
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence

import numpy as np

from alibi_countergan.backends import install_hint
from alibi_countergan.threads import intra_op_threads

if TYPE_CHECKING:  # pragma: no cover - for the annotations only
    from torch import nn

__all__ = ["mlp", "numpy_predictor", "train"]


def _require_torch(what: str) -> None:
    if importlib.util.find_spec("torch") is None:
        raise ImportError(f"{what} needs PyTorch, which is not installed. {install_hint('torch')}")


def _standardise(X: np.ndarray) -> "nn.Module":
    """A layer computing ``(x - mean) / std`` with the column statistics of ``X`` (a constant column's std: 1)."""
    import torch
    from torch import nn

    class Standardise(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            std = X.std(0)
            self.register_buffer("mean", torch.as_tensor(X.mean(0), dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(np.where(std > 0, std, 1.0), dtype=torch.float32))

        def forward(self, v: torch.Tensor) -> torch.Tensor:
            mean, std = self.mean, self.std
            assert isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor)
            return (v - mean) / std

    return Standardise()


def mlp(X: np.ndarray, n_classes: int, hidden: Sequence[int] = (32, 32), batchnorm: bool = False) -> "nn.Sequential":
    """A softmax MLP on raw features: standardisation (with ``X``'s statistics), then ReLU layers.

    Parameters
    ----------
    X
        Training features, shape ``(n, d)``: their mean and standard deviation are the first layer's
        constants, their width the input width.
    n_classes
        Width of the softmax output.
    hidden
        Widths of the hidden layers, each followed by a ReLU.
    batchnorm
        Put batch normalisation and dropout (rate 0.1) between the first hidden layer and its ReLU.

    Returns
    -------
    torch.nn.Sequential
        The untrained model (its weights come from PyTorch's global random state; :func:`train`
        re-initialises them from its seed).

    Raises
    ------
    ValueError
        For features that are not a 2-D array with rows, fewer than 2 classes, or no or non-positive
        hidden widths.
    ImportError
        Without PyTorch.
    """
    _require_torch("alibi_countergan.classifiers.mlp")
    from torch import nn

    X = np.asarray(X)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"X must be a 2-D array with at least one row, got shape {X.shape}.")
    if int(n_classes) < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}.")
    if len(hidden) == 0 or any(int(h) < 1 for h in hidden):
        raise ValueError(f"hidden must hold one or more positive layer widths, got {list(hidden)}.")
    layers: List[nn.Module] = [_standardise(X)]
    width = X.shape[1]
    for i, h in enumerate(hidden):
        layers.append(nn.Linear(width, int(h)))
        if i == 0 and batchnorm:
            layers += [nn.BatchNorm1d(int(h)), nn.Dropout(0.1)]
        layers.append(nn.ReLU())
        width = int(h)
    return nn.Sequential(*layers, nn.Linear(width, int(n_classes)), nn.Softmax(dim=-1))


def train(model: "nn.Module", X: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0, learning_rate: float = 3e-3,
          batch_size: int = 64, n_threads: Optional[int] = None) -> "nn.Module":
    """Train a classifier with softmax outputs in place: Adam on the negative log-likelihood, seeded.

    The model's layers are re-initialised (``reset_parameters``) from ``seed``, each epoch visits
    the rows in an order drawn by ``numpy.random.default_rng(seed)``, split into ``len(X) //
    batch_size`` batches of about ``batch_size`` rows. PyTorch's global random state is restored
    afterwards, and the gradients are cleared.

    Parameters
    ----------
    model
        A ``torch.nn.Module`` that maps a float32 batch of ``X``'s rows to class probabilities.
    X
        Training inputs, any shape with one row per label.
    y
        Integer class labels, shape ``(len(X),)``.
    epochs
        Passes over the data.
    seed
        Seed of the initial weights and of the batch order.
    learning_rate
        Adam's learning rate.
    batch_size
        Rows per batch (about: the rows are split into equal parts).
    n_threads
        PyTorch intra-op threads during training (the previous setting is restored afterwards);
        None leaves the setting as it is.

    Returns
    -------
    torch.nn.Module
        ``model``, trained and in evaluation mode.

    Raises
    ------
    ValueError
        For labels that are not integers of one per row, an empty ``X``, or an ``epochs`` or
        ``batch_size`` below 1.
    ImportError
        Without PyTorch.
    """
    _require_torch("alibi_countergan.classifiers.train")
    import torch
    from torch import nn

    labels = np.asarray(y)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or len(labels) != len(X) or len(X) == 0:
        raise ValueError(f"y must hold one integer label per row of X ({len(X)} rows, at least one), got "
                         f"{labels.dtype} labels of shape {labels.shape}.")
    if int(epochs) < 1 or int(batch_size) < 1:
        raise ValueError(f"epochs and batch_size must be at least 1, got {epochs} and {batch_size}.")
    with torch.random.fork_rng(devices=[]), intra_op_threads("pytorch", n_threads):
        torch.manual_seed(seed)
        for layer in model.modules():
            reset = getattr(layer, "reset_parameters", None)
            if callable(reset):
                reset()
        optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
        xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.int64)
        order = np.random.default_rng(seed)
        model.train()
        for _ in range(int(epochs)):
            for batch in np.array_split(order.permutation(len(X)), max(1, len(X) // int(batch_size))):
                optimiser.zero_grad()
                nn.functional.nll_loss(torch.log(model(xt[batch]) + 1e-7), yt[batch]).backward()
                optimiser.step()
        optimiser.zero_grad(set_to_none=True)
    return model.eval()


def numpy_predictor(model: "nn.Module") -> Callable[[np.ndarray], np.ndarray]:
    """A plain prediction function around a model: a numpy array in, its probabilities as a numpy array out.

    The returned function raises a TypeError for anything but a numpy array (a black-box
    explainer must pass numpy arrays).

    Raises
    ------
    ImportError
        Without PyTorch.
    """
    _require_torch("alibi_countergan.classifiers.numpy_predictor")
    import torch

    def predict(x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"the predictor received {type(x).__name__}, not a numpy array")
        with torch.no_grad():
            out: np.ndarray = model(torch.as_tensor(x, dtype=torch.float32)).numpy()
        return out

    return predict
