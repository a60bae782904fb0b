"""Data sets for the demo, the tests and the benchmarks.

The package ships two small tables: a trimmed copy of ProPublica's COMPAS data (the columns a
model uses, no names or identifiers; see :func:`load_compas`) and the Pima Indians Diabetes data
(see :func:`load_pima`). MNIST is read from a path the caller gives (the repository holds a
5,000-image subset in ``data/mnist-subset.npz``), and a missing file is a clear error naming it.
"""

import gzip
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import pandas as pd

PathLike = Union[str, "os.PathLike[str]"]

COMPAS_NUMERIC = ["age", "priors_count", "days_b_screening_arrest", "juv_fel_count", "juv_misd_count",
                  "juv_other_count"]
"""Numerical COMPAS features, in the encoded table's order."""

COMPAS_CATEGORICAL = ["sex", "race", "c_charge_degree"]
"""Categorical COMPAS features, one-hot encoded after the numerical ones."""

PIMA_FEATURES = ["Pregnancies", "Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI",
                 "DiabetesPedigreeFunction", "Age"]
"""Pima Indians Diabetes features, in the file's column order."""


@dataclass
class TabularData:
    """An encoded tabular data set.

    Attributes
    ----------
    X
        Features, float32, one-hot groups after the numerical columns.
    y
        Labels (int64).
    feature_names
        Name of each column of ``X`` (``'race=Caucasian'`` for one-hot columns).
    cat_vars
        alibi's map of one-hot groups, ``{first_column: n_categories}``.
    category_map
        ``{first_column: [category names]}`` for the same groups.
    target_names
        Meaning of each label value.
    raw
        The table before encoding.
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: List[str]
    cat_vars: Dict[int, int] = field(default_factory=dict)
    category_map: Dict[int, List[str]] = field(default_factory=dict)
    target_names: List[str] = field(default_factory=list)
    raw: Optional[pd.DataFrame] = None

    def split(self, test_size: float = 0.2, seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A random ``(X_train, X_test, y_train, y_test)`` split."""
        if not 0 < test_size < 1:
            raise ValueError(f"test_size must be between 0 and 1, got {test_size}.")
        order = np.random.default_rng(seed).permutation(len(self.X))
        n_test = int(round(test_size * len(self.X)))
        test, train = order[:n_test], order[n_test:]
        return self.X[train], self.X[test], self.y[train], self.y[test]

    def describe(self, row: np.ndarray) -> Dict[str, Union[float, str]]:
        """One encoded row as ``{feature: value}`` with each one-hot group decoded to its category."""
        row = np.asarray(row).reshape(-1)
        out: Dict[str, Union[float, str]] = {}
        grouped: set = set()
        for start, n in self.cat_vars.items():
            name = self.feature_names[start].split("=")[0]
            block = row[start:start + n]
            out[name] = self.category_map[start][int(np.argmax(block))]
            grouped.update(range(start, start + n))
        numeric = {self.feature_names[j]: float(row[j]) for j in range(len(row)) if j not in grouped}
        return {**numeric, **out}


def _require(path: PathLike, what: str, where: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what}: no file at {p.resolve()}. {where}")
    return p


def _onehot(frame: pd.DataFrame, numeric: List[str], categorical: List[str]
            ) -> Tuple[np.ndarray, List[str], Dict[int, int], Dict[int, List[str]]]:
    blocks = [frame[numeric].to_numpy(dtype=np.float32)]
    names = list(numeric)
    cat_vars: Dict[int, int] = {}
    category_map: Dict[int, List[str]] = {}
    column = len(numeric)
    for col in categorical:
        categories = sorted(frame[col].astype(str).unique())
        codes = pd.Categorical(frame[col].astype(str), categories=categories).codes
        blocks.append(np.eye(len(categories), dtype=np.float32)[codes])
        names += [f"{col}={c}" for c in categories]
        cat_vars[column] = len(categories)
        category_map[column] = categories
        column += len(categories)
    return np.concatenate(blocks, axis=1), names, cat_vars, category_map


def compas_csv() -> Path:
    """The path of the COMPAS table shipped with the package: a gzipped CSV with its strings as they are.

    ``pandas.read_csv(compas_csv())`` gives the raw table of :func:`load_compas` (6,172 rows: six integer
    columns, ``sex``, ``race`` and ``c_charge_degree`` as strings, and the label ``two_year_recid``), the
    starting point of a model built on a user's own table.
    """
    return Path(str(resources.files("alibi_countergan").joinpath("data/compas.csv.gz")))


def load_compas(path: Optional[PathLike] = None) -> TabularData:
    """The COMPAS recidivism data, one-hot encoded, with label 1 when the person did NOT reoffend.

    Parameters
    ----------
    path
        None reads the table shipped with the package: ProPublica's ``compas-scores-two-years.csv``
        filtered as in ProPublica's analysis (screening within 30 days of arrest, charge degree F
        or M, known outcome: 6,172 rows) and trimmed to the model's columns. A path reads the full
        ProPublica file and applies the same filter and columns.

    Returns
    -------
    The encoded data set: six numerical features, then one-hot ``sex`` (2), ``race`` (6) and
    ``c_charge_degree`` (2): 16 columns.
    """
    if path is None:
        with resources.files("alibi_countergan").joinpath("data/compas.csv.gz").open("rb") as f:
            frame = pd.read_csv(f, compression="gzip")
    else:
        where = "Pass the path of ProPublica's compas-scores-two-years.csv, or no path for the shipped table."
        frame = pd.read_csv(_require(path, "COMPAS data", where))
        missing = [c for c in COMPAS_NUMERIC + COMPAS_CATEGORICAL + ["two_year_recid"] if c not in frame.columns]
        if missing:
            raise ValueError(f"COMPAS data at {path} lacks the columns {missing}.")
        keep = frame.days_b_screening_arrest.between(-30, 30)
        if "is_recid" in frame.columns:
            keep &= frame.is_recid != -1
        keep &= frame.c_charge_degree != "O"
        frame = frame.loc[keep, COMPAS_NUMERIC + COMPAS_CATEGORICAL + ["two_year_recid"]].reset_index(drop=True)
    X, names, cat_vars, category_map = _onehot(frame, COMPAS_NUMERIC, COMPAS_CATEGORICAL)
    y = (frame["two_year_recid"].to_numpy() == 0).astype(np.int64)
    return TabularData(X=X, y=y, feature_names=names, cat_vars=cat_vars, category_map=category_map,
                       target_names=["reoffended", "did not reoffend"], raw=frame)


def load_pima(path: Optional[PathLike] = None) -> TabularData:
    """The Pima Indians Diabetes data (768 rows, 8 features; label 1 = diabetes).

    Parameters
    ----------
    path
        None reads the copy shipped with the package (the data of Smith et al., 1988, as
        distributed by the UCI repository: 768 women of Pima heritage near Phoenix, Arizona). A
        path reads a headerless CSV file laid out like ``pima-indians-diabetes.csv``: the eight
        features of :data:`PIMA_FEATURES`, then the label.
    """
    if path is None:
        with resources.files("alibi_countergan").joinpath("data/pima.csv.gz").open("rb") as f, \
                gzip.open(f, "rt") as text:
            data = np.loadtxt(text, delimiter=",", dtype=np.float64)
    else:
        data = np.loadtxt(_require(path, "Pima diabetes data", "Pass the path of a headerless CSV file of 8 "
                                   "features and the label, or no path for the copy shipped with the package."),
                          delimiter=",", dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != 9:
        raise ValueError(f"Pima data at {path} must have 9 columns (8 features and the label), got shape "
                         f"{data.shape}.")
    frame = pd.DataFrame(data[:, :8], columns=PIMA_FEATURES)
    return TabularData(X=data[:, :8].astype(np.float32), y=data[:, 8].astype(np.int64),
                       feature_names=list(PIMA_FEATURES), target_names=["no diabetes", "diabetes"], raw=frame)


def load_mnist(path: PathLike) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST from an ``.npz`` file, scaled to [0, 1] with shape ``(n, 28, 28, 1)``.

    Parameters
    ----------
    path
        An ``.npz`` file with ``x_train``, ``y_train``, ``x_test``, ``y_test``: the standard
        ``mnist.npz`` (``tf.keras.datasets.mnist.load_data()`` downloads it into
        ``~/.keras/datasets/``), or the repository's 5,000-image subset ``data/mnist-subset.npz``.

    Returns
    -------
    ``(x_train, y_train, x_test, y_test)``: float32 images and int64 labels.
    """
    with np.load(_require(path, "MNIST data", "Pass the path of an mnist.npz file: the repository holds a "
                          "5,000-image subset in data/mnist-subset.npz, and tf.keras.datasets.mnist.load_data() "
                          "downloads the full file into ~/.keras/datasets/mnist.npz.")) as d:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in d.files]
        if missing:
            raise ValueError(f"MNIST file {path} lacks the arrays {missing}.")

        def images(a: np.ndarray) -> np.ndarray:
            return (a.astype(np.float32) / 255.0)[..., None]

        return images(d["x_train"]), d["y_train"].astype(np.int64), images(d["x_test"]), d["y_test"].astype(np.int64)
