"""The three data sets in the space every method works in (the classifier's input space).

MNIST: 28x28x1 images in [0, 1]. Tabular sets: numerical columns standardised with the training
split's statistics, categorical columns one-hot encoded (as in the paper); every method, the
classifier and the autoencoder see these encoded rows, so L1 distances are in units of standard
deviations (and 2 per changed category).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from alibi_countergan.datasets import load_compas, load_mnist, load_pima
from benchmarks.suite.settings import data_file, shipped_file


@dataclass
class Dataset:
    """One benchmark data set.

    Attributes
    ----------
    name
        ``'mnist'``, ``'compas'`` or ``'pima'``.
    X_train, y_train, X_test, y_test
        Encoded features (float32) and labels.
    feature_names
        Name of each (flattened) column; None for images.
    cat_vars
        alibi's ``{first_column: n_categories}`` of the one-hot groups.
    feature_range
        ``(lower, upper)`` of the counterfactuals, arrays shaped ``(1,) + instance shape``.
    target
        The class every counterfactual is asked to reach.
    target_name, other_name
        What the target class and the other class(es) mean.
    immutable
        Features that an actionable counterfactual must not change (names), for the constrained
        CounteRGAN variants and the violation counts of every method.
    scale
        For tabular sets, the standard deviation of each numerical column (to report changes in
        the data's own units).
    center
        For tabular sets, the training mean of each numerical column: ``x * scale + center`` gives a
        numerical column back in the data's own units.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: Optional[List[str]]
    cat_vars: Dict[int, int]
    feature_range: Tuple[np.ndarray, np.ndarray]
    target: int
    target_name: str
    other_name: str
    immutable: List[str] = field(default_factory=list)
    scale: Optional[np.ndarray] = None
    center: Optional[np.ndarray] = None

    @property
    def shape(self) -> Tuple[int, ...]:
        """alibi's ``(1,) + instance shape``."""
        return (1,) + tuple(self.X_train.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.name == "mnist"

    def immutable_columns(self) -> List[int]:
        """Column indices of :attr:`immutable`."""
        assert self.feature_names is not None or not self.immutable
        return [self.feature_names.index(n) for n in self.immutable] if self.feature_names else []


def _standardise(X_train: np.ndarray, X_test: np.ndarray,
                 numeric: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    mean = X_train[:, :numeric].mean(axis=0)
    std = X_train[:, :numeric].std(axis=0)
    std = np.where(std > 0, std, 1.0)

    def f(x: np.ndarray) -> np.ndarray:
        out = x.astype(np.float32, copy=True)
        out[:, :numeric] = (x[:, :numeric] - mean) / std
        return out

    return f(X_train), f(X_test), std.astype(np.float32), mean.astype(np.float32)


def _range(X_train: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    return X_train.min(axis=0, keepdims=True).astype(np.float32), X_train.max(axis=0, keepdims=True).astype(np.float32)


def load(name: str, directory: Path, seed: int = 0, n_train: Optional[int] = None) -> Dataset:
    """Load and encode a data set from the data directory (see :func:`benchmarks.suite.settings.data_file`).

    Parameters
    ----------
    name
        ``'mnist'``, ``'compas'`` or ``'pima'``.
    directory
        The data directory (:data:`benchmarks.suite.settings.SHIPPED_DATA_DIR`: the data shipped
        with the repository).
    seed
        Seed of the tabular sets' 80/20 split and of the training subset.
    n_train
        Keep this many training rows (a seeded random subset; None keeps all).
    """
    path = data_file(directory, name)
    if name == "mnist":
        x_train, y_train, x_test, y_test = load_mnist(path)
        shape = (1, 28, 28, 1)
        ds = Dataset(name, x_train, y_train, x_test, y_test, feature_names=None, cat_vars={},
                     feature_range=(np.zeros(shape, np.float32), np.ones(shape, np.float32)), target=4,
                     target_name="4", other_name="another digit")
    elif name == "compas":
        data = load_compas(None if path == shipped_file(name) else path)
        X_train, X_test, y_train, y_test = data.split(0.2, seed=seed)
        numeric = min(data.cat_vars) if data.cat_vars else X_train.shape[1]
        X_train, X_test, scale, center = _standardise(X_train, X_test, numeric)
        race_sex = [n for n in data.feature_names if n.startswith(("race=", "sex="))]
        ds = Dataset(name, X_train, y_train, X_test, y_test, feature_names=list(data.feature_names),
                     cat_vars=dict(data.cat_vars), feature_range=_range(X_train), target=1,
                     target_name="did not reoffend", other_name="reoffended", immutable=["age"] + race_sex,
                     scale=scale, center=center)
    elif name == "pima":
        data = load_pima(None if path == shipped_file(name) else path)
        X_train, X_test, y_train, y_test = data.split(0.2, seed=seed)
        X_train, X_test, scale, center = _standardise(X_train, X_test, X_train.shape[1])
        ds = Dataset(name, X_train, y_train, X_test, y_test, feature_names=list(data.feature_names), cat_vars={},
                     feature_range=_range(X_train), target=0, target_name="no diabetes", other_name="diabetes",
                     immutable=["Pregnancies", "DiabetesPedigreeFunction", "Age"], scale=scale,
                     center=center)
    else:
        raise ValueError(f"Unknown data set {name!r}.")
    if n_train is not None and n_train < len(ds.X_train):
        keep = np.sort(np.random.default_rng(seed).choice(len(ds.X_train), n_train, replace=False))
        ds.X_train, ds.y_train = ds.X_train[keep], ds.y_train[keep]
    return ds
