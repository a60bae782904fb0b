"""The example deployment's data: the raw COMPAS table as its CSV gives it, and the split every script shares.

``pandas.read_csv(alibi_countergan.datasets.compas_csv())`` (:func:`compas_csv` here) is the table a
user would start from: six integer columns (``age``, ``priors_count``, ``days_b_screening_arrest`` and
three juvenile counts), ``sex``, ``race`` and ``c_charge_degree`` as strings, and the label
``two_year_recid``. The label used here is 1 when the person did NOT reoffend (``two_year_recid == 0``),
the favourable outcome that the recourse aims at.
"""

import importlib.util
from pathlib import Path
from typing import Tuple

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

LABEL = "two_year_recid"
"""The CSV's label column (1: reoffended within two years)."""

CATEGORICAL = ["sex", "race", "c_charge_degree"]
"""The string columns."""

TARGET_NAMES = ["reoffended", "did not reoffend"]
"""Class names of the label used here."""


def compas_csv() -> Path:
    """``alibi_countergan.datasets.compas_csv()``, found without importing the package.

    Importing ``alibi_countergan`` imports alibi and with it TensorFlow (seconds, tens of seconds on a
    busy machine); a client that only reads the CSV need not wait for that.
    """
    spec = importlib.util.find_spec("alibi_countergan")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("alibi_countergan is not installed: pip install -e . from the repository root.")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "compas.csv.gz"


def load_table() -> Tuple[pd.DataFrame, pd.Series]:
    """The raw table without its label, and the label (1: did not reoffend)."""
    frame = pd.read_csv(compas_csv())
    y = (frame.pop(LABEL) == 0).astype(np.int64).rename("did_not_reoffend")
    return frame, y


def split(seed: int = 0) -> Tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """``X_train, X_test, y_train, y_test``: 80% / 20%, stratified by the label; the same rows for every script."""
    X, y = load_table()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
    return X_train, X_test, y_train, y_test
