"""DiCE (the ``dice-ml`` package, methods ``'random'`` and ``'genetic'``) as the diversity baseline.

DiCE works on a pandas DataFrame in the data's own units: one column per numerical feature and one
string column per categorical variable. :class:`Frame` converts the benchmark's encoded rows (numerical
columns standardised with the training split's statistics, then the one-hot groups) to that layout and
back: numbers are un-standardised and rounded to the precision the training values have (whole
numbers stay whole, so DiCE samples counts as integers), and each one-hot group becomes its category's
name. DiCE gets the benchmark's classifier behind a thin object with ``predict_proba`` over such
frames (:class:`EncodedModel`, its ``'sklearn'`` backend), the training rows with their labels, the
immutable variables left out of ``features_to_vary``, and its defaults otherwise (the quick profile
lowers ``sample_size`` and ``maxiterations``). Its counterfactuals are mapped back to the encoded
layout and scored there, with the other methods' measures.
"""

import random
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from benchmarks.suite.data import Dataset

OUTCOME = "outcome"
"""The label column of DiCE's training frame."""
MAX_PRECISION = 6
DICE_METHODS = ("random", "genetic")


@dataclass(frozen=True)
class Frame:
    """The encoded layout (numerical columns, then one-hot groups) and DiCE's DataFrame layout.

    Attributes
    ----------
    numeric
        Names of the numerical columns (the first ``len(numeric)`` encoded columns).
    center, scale
        Training mean and standard deviation of each numerical column.
    precision
        Decimals of each numerical column's training values (0: whole numbers).
    groups
        ``(variable, first column, category names)`` of each one-hot group, in column order.
    n_features
        Encoded columns.
    """

    numeric: Tuple[str, ...]
    center: np.ndarray
    scale: np.ndarray
    precision: Tuple[int, ...]
    groups: Tuple[Tuple[str, int, Tuple[str, ...]], ...]
    n_features: int

    @classmethod
    def of(cls, ds: Dataset) -> "Frame":
        """The layout of a tabular data set whose one-hot columns are named ``'variable=category'``."""
        if ds.feature_names is None or ds.scale is None or ds.center is None:
            raise ValueError(f"DiCE needs a tabular data set with feature names and statistics; {ds.name} has none.")
        names = list(ds.feature_names)
        n_numeric = min(ds.cat_vars) if ds.cat_vars else len(names)
        groups = []
        for start, size in sorted(ds.cat_vars.items()):
            parts = [n.split("=", 1) for n in names[start:start + size]]
            if any(len(p) != 2 for p in parts) or len({p[0] for p in parts}) != 1:
                raise ValueError(f"columns {names[start:start + size]} are not one variable's 'variable=category'.")
            groups.append((parts[0][0], start, tuple(p[1] for p in parts)))
        raw = ds.X_train[:, :n_numeric].astype(np.float64) * ds.scale + ds.center
        precision = tuple(_precision(raw[:, j]) for j in range(n_numeric))
        return cls(tuple(names[:n_numeric]), ds.center.astype(np.float64), ds.scale.astype(np.float64), precision,
                   tuple(groups), len(names))

    @property
    def columns(self) -> List[str]:
        """DiCE's feature columns: the numerical ones, then one per categorical variable."""
        return list(self.numeric) + [g[0] for g in self.groups]

    def to_frame(self, x: np.ndarray) -> Any:
        """Encoded rows as DiCE's DataFrame (numbers in the data's units, categories by name)."""
        import pandas as pd

        x = np.asarray(x, dtype=np.float64)
        columns: Dict[str, Any] = {}
        for j, name in enumerate(self.numeric):
            value = np.round(x[:, j] * self.scale[j] + self.center[j], self.precision[j])
            columns[name] = value.astype(np.int64) if self.precision[j] == 0 else value
        for variable, start, categories in self.groups:
            columns[variable] = np.asarray(categories, dtype=object)[x[:, start:start + len(categories)].argmax(1)]
        return pd.DataFrame(columns, columns=self.columns)

    def to_encoded(self, frame: Any) -> np.ndarray:
        """DiCE's DataFrame (any extra columns ignored) as encoded float32 rows."""
        out = np.zeros((len(frame), self.n_features), dtype=np.float64)
        for j, name in enumerate(self.numeric):
            out[:, j] = (frame[name].to_numpy(dtype=np.float64) - self.center[j]) / self.scale[j]
        for variable, start, categories in self.groups:
            index = {c: i for i, c in enumerate(categories)}
            codes = [index.get(str(v), -1) for v in frame[variable].tolist()]
            if min(codes, default=0) < 0:
                raise ValueError(f"unknown category of {variable!r} in {sorted(set(frame[variable].tolist()))}.")
            out[np.arange(len(frame)), start + np.asarray(codes, dtype=np.int64)] = 1.0
        return out.astype(np.float32)

    def variable_columns(self) -> Dict[str, List[int]]:
        """Encoded columns of each of DiCE's columns."""
        out = {name: [j] for j, name in enumerate(self.numeric)}
        out.update({v: list(range(s, s + len(c))) for v, s, c in self.groups})
        return out


def _precision(values: np.ndarray) -> int:
    """Decimals that the values have (their float32 round trip aside), at most :data:`MAX_PRECISION`."""
    for p in range(MAX_PRECISION):
        if np.all(np.abs(values - np.round(values, p)) <= 1e-3 * 10.0 ** -p):
            return p
    return MAX_PRECISION


@dataclass(frozen=True)
class EncodedModel:
    """The benchmark's classifier as DiCE's ``'sklearn'`` backend calls it: ``predict_proba`` over DataFrames."""

    frame: Frame
    predict_encoded: Callable[[np.ndarray], np.ndarray]

    def predict_proba(self, rows: Any) -> np.ndarray:
        """Class probabilities of DiCE's rows."""
        return np.asarray(self.predict_encoded(self.frame.to_encoded(rows)), dtype=np.float64)

    def predict(self, rows: Any) -> np.ndarray:
        """Predicted classes of DiCE's rows."""
        return self.predict_proba(rows).argmax(axis=1)


@dataclass
class DiceExplainer:
    """A DiCE explainer of one method on one data set, with the settings of a run.

    Attributes
    ----------
    explainer
        ``dice_ml.Dice``.
    frame
        The layout.
    method
        ``'random'`` or ``'genetic'``.
    features_to_vary
        DiCE's columns that may change (every variable but the immutable ones).
    settings
        ``generate_counterfactuals`` keywords of the method (``sample_size`` or ``maxiterations``).
    row_limit_s
        Seconds one row may take.
    """

    explainer: Any
    frame: Frame
    method: str
    features_to_vary: List[str]
    settings: Dict[str, Any]
    row_limit_s: float


def build(ds: Dataset, predict_encoded: Callable[[np.ndarray], np.ndarray], method: str, sample_size: int,
          max_iterations: int, row_limit_s: float) -> DiceExplainer:
    """DiCE on a data set's training rows (with their labels), the classifier behind :class:`EncodedModel`."""
    import dice_ml

    if method not in DICE_METHODS:
        raise ValueError(f"Unknown DiCE method {method!r}; use one of {DICE_METHODS}.")
    frame = Frame.of(ds)
    train = frame.to_frame(ds.X_train)
    train[OUTCOME] = np.asarray(ds.y_train, dtype=np.int64)
    data = dice_ml.Data(dataframe=train, continuous_features=list(frame.numeric), outcome_name=OUTCOME,
                        continuous_features_precision=dict(zip(frame.numeric, frame.precision)))
    model = dice_ml.Model(model=EncodedModel(frame, predict_encoded), backend="sklearn")
    immutable = {n.split("=", 1)[0] for n in ds.immutable}
    vary = [c for c in frame.columns if c not in immutable]
    settings: Dict[str, Any] = {"sample_size": int(sample_size)} if method == "random" else \
        {"maxiterations": int(max_iterations)}
    return DiceExplainer(dice_ml.Dice(data, model, method=method), frame, method, vary, settings, row_limit_s)


class RowTimeout(Exception):
    """A DiCE call ran past its row's limit."""


def _alarm(signum: int, frame: Any) -> None:
    raise RowTimeout()


@contextmanager
def _limited(seconds: float) -> Iterator[None]:
    """Raise :class:`RowTimeout` in the block after ``seconds`` (SIGALRM: the worker's main thread)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def explain(dice: DiceExplainer, x_row: np.ndarray, target: int, k: int, seed: int) -> Tuple[np.ndarray, str]:
    """DiCE's counterfactuals of one encoded row, encoded: ``(m, n_features)`` with ``m <= k``, and a status.

    The status is ``'ok'``, ``'none'`` (DiCE found no counterfactual) or ``'timeout'`` (the row ran past
    ``row_limit_s``; nothing is returned). DiCE's post-hoc sparsity step is kept (its default), so the
    counterfactuals are the ones DiCE shows a user. A value DiCE leaves as it was keeps its encoded value.
    """
    from raiutils.exceptions import UserConfigValidationException

    query = dice.frame.to_frame(x_row.reshape(1, -1))
    # DiCE draws from Python's and numpy's global generators (a fixed random_seed argument would give DiCE-random
    # the same draws for every feature): seeding them makes a row's result reproducible
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)  # noqa: NPY002
    empty = np.zeros((0, dice.frame.n_features), dtype=np.float32)
    try:
        with _limited(dice.row_limit_s):
            result = dice.explainer.generate_counterfactuals(
                query, total_CFs=k, desired_class=int(target), features_to_vary=dice.features_to_vary,
                verbose=False, **dice.settings)
    except RowTimeout:
        return empty, "timeout"
    except UserConfigValidationException as err:
        if "No counterfactuals found" not in str(err):
            raise
        return empty, "none"
    examples = result.cf_examples_list[0]
    found = examples.final_cfs_df_sparse if examples.final_cfs_df_sparse is not None else examples.final_cfs_df
    if found is None or len(found) == 0:
        return empty, "none"
    return _keep_unchanged(dice.frame, query, found, x_row), "ok"


def _keep_unchanged(frame: Frame, query: Any, found: Any, x_row: np.ndarray) -> np.ndarray:
    """DiCE's rows encoded; a value DiCE left as the query's (to its precision: DiCE holds numbers as float32)
    gets the query's encoded value back, so that rounding adds no change in the standardised units."""
    cf = frame.to_encoded(found)
    for name, columns in frame.variable_columns().items():
        if name in frame.numeric:
            tolerance = 0.5 * 10.0 ** -frame.precision[frame.numeric.index(name)]
            same = np.abs(found[name].to_numpy(dtype=np.float64) - float(query[name].iloc[0])) < tolerance
        else:
            same = found[name].astype(str).to_numpy() == str(query[name].iloc[0])
        cf[np.ix_(same, columns)] = x_row.reshape(-1)[columns]
    return cf


def explain_rows(dice: DiceExplainer, x: np.ndarray, target: int, k: int, seed: int
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[str]]:
    """Every row, one call each: ``(owner, counterfactuals, milliseconds per row, status per row)``."""
    owner: List[np.ndarray] = []
    found: List[np.ndarray] = []
    times: List[float] = []
    status: List[str] = []
    for i, row in enumerate(x):
        start = time.perf_counter()
        cf, state = explain(dice, row, target, k, seed + i)
        times.append(1000 * (time.perf_counter() - start))
        owner.append(np.full(len(cf), i, dtype=np.int64))
        found.append(cf)
        status.append(state)
    cfs = np.concatenate(found) if found else np.zeros((0, dice.frame.n_features), np.float32)
    return np.concatenate(owner) if owner else np.zeros(0, np.int64), cfs, np.asarray(times), status


def describe(dice: Optional[DiceExplainer]) -> Dict[str, Any]:
    """The settings of a DiCE run, for the JSON file."""
    if dice is None:
        return {}
    from importlib import metadata

    return {"method": dice.method, "features_to_vary": dice.features_to_vary, **dice.settings,
            "row_limit_s": dice.row_limit_s, "posthoc_sparsity_param": 0.1,
            "dice_ml": metadata.version("dice-ml")}
