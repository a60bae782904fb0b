"""Shared fixtures: real data sets, real classifiers and fitted explainers (trained once per session)."""

import os
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from alibi_countergan import CounteRGAN  # noqa: E402
from alibi_countergan.datasets import TabularData, load_compas, load_pima  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """``COUNTERGAN_DATA_DIR`` or the workplace's ``../shared/data``."""
    return Path(os.environ.get("COUNTERGAN_DATA_DIR", REPO.parent / "shared" / "data"))


class Standardise(nn.Module):
    def __init__(self, x: np.ndarray) -> None:
        super().__init__()
        std = x.std(0)
        self.register_buffer("mean", torch.as_tensor(x.mean(0), dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(np.where(std > 0, std, 1.0), dtype=torch.float32))

    def forward(self, x: "torch.Tensor") -> "torch.Tensor":
        return (x - self.mean) / self.std


def train_torch(model: "nn.Module", X: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0,
                lr: float = 3e-3) -> "nn.Module":
    """Train a softmax classifier with Adam and return it in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in model.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            for batch in np.array_split(rng.permutation(len(X)), max(1, len(X) // 64)):
                optimiser.zero_grad()
                nn.functional.nll_loss(torch.log(model(xt[batch]) + 1e-7), yt[batch]).backward()
                optimiser.step()
        optimiser.zero_grad(set_to_none=True)
    return model.eval()


def numpy_fn(model: "nn.Module") -> Callable[[np.ndarray], np.ndarray]:
    """A plain prediction function (numpy in, numpy out) around a torch model."""

    def predict(x: np.ndarray) -> np.ndarray:
        assert isinstance(x, np.ndarray), f"the predictor received {type(x).__name__}, not a numpy array"
        with torch.no_grad():
            return model(torch.as_tensor(x, dtype=torch.float32)).numpy()

    return predict


def mlp(d: int, k: int, x: np.ndarray, hidden: int = 32) -> "nn.Module":
    return nn.Sequential(Standardise(x), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, k), nn.Softmax(dim=-1))


@pytest.fixture(scope="session")
def pima() -> Tuple[TabularData, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    path = data_dir() / "pima-indians-diabetes.csv"
    if not path.is_file():
        raise FileNotFoundError(f"The tests need {path}; set COUNTERGAN_DATA_DIR to the folder holding it.")
    data = load_pima(path)
    return (data,) + data.split(0.2, seed=0)


@pytest.fixture(scope="session")
def pima_model(pima) -> "nn.Module":
    _, X_train, _, y_train, _ = pima
    return train_torch(mlp(8, 2, X_train), X_train, y_train, epochs=40)


@pytest.fixture(scope="session")
def compas() -> Tuple[TabularData, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_compas()
    return (data,) + data.split(0.2, seed=0)


@pytest.fixture(scope="session")
def compas_model(compas) -> "nn.Module":
    _, X_train, _, y_train, _ = compas
    return train_torch(mlp(X_train.shape[1], 2, X_train), X_train, y_train, epochs=10)


@pytest.fixture(scope="session")
def digits() -> Dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)[..., None]  # (n, 8, 8, 1) in [0, 1]
    order = np.random.default_rng(0).permutation(len(images))
    train, test = order[:1400], order[1400:]
    return {"X_train": images[train], "y_train": d.target[train], "X_test": images[test], "y_test": d.target[test]}


@pytest.fixture(scope="session")
def digits_model(digits) -> "nn.Module":
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10), nn.Softmax(dim=-1))
    return train_torch(model, digits["X_train"], digits["y_train"], epochs=30)


@pytest.fixture(scope="session")
def pima_whitebox(pima, pima_model) -> CounteRGAN:
    _, X_train, _, _, _ = pima
    return CounteRGAN(pima_model, (1, 8), verbose=False, seed=0).fit(X_train)


@pytest.fixture(scope="session")
def digits_whitebox(digits, digits_model) -> CounteRGAN:
    return CounteRGAN(digits_model, (1, 8, 8, 1), train_steps=600, verbose=False, seed=0).fit(digits["X_train"])
