"""Quality measures of counterfactuals, as in Table 1 of the paper, framework-free.

Every function takes numpy arrays (a batch of originals, their counterfactuals, the classifier's
probabilities or an autoencoder's reconstructions, computed by the caller with any framework)
and returns one value per instance, so that any summary can be taken; :func:`mean_interval`
gives the paper's ``mean +- 1.96 std / sqrt(n)``. This module uses the core (the
feature space of :mod:`alibi_countergan.constraints`, whose constraints :func:`violations` counts);
nothing in the core imports it.

Example
-------
>>> gain = prediction_gain(orig_proba, cf_proba, target=4)
>>> summary = mean_interval(gain)
>>> print(f"{summary.mean:.2f} +- {summary.half_width:.2f}")
"""

import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Union

import numpy as np

from alibi_countergan.constraints import FeatureSpace

Targets = Union[int, Sequence[int], np.ndarray]
"""One target class for every row, or one per row."""

Z_95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95% interval."""


def _targets(target: Targets, n: int) -> np.ndarray:
    t = np.asarray(target, dtype=np.int64)
    if t.ndim == 0:
        return np.full(n, int(t), dtype=np.int64)
    if t.shape != (n,):
        raise ValueError(f"target must be one class or one class per row ({n}), got shape {t.shape}.")
    return t


def _proba(proba: np.ndarray, what: str) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"{what} must be a (n, n_classes) matrix of probabilities, got shape {p.shape}.")
    return p


def _flat_pair(x: np.ndarray, cf: np.ndarray) -> "tuple[np.ndarray, np.ndarray]":
    a, b = np.asarray(x, dtype=np.float64), np.asarray(cf, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"originals {a.shape} and counterfactuals {b.shape} must have the same shape.")
    if a.ndim == 0:
        raise ValueError("expected a batch of instances, got a scalar.")
    return a.reshape(len(a), -1), b.reshape(len(b), -1)


def target_probability(proba: np.ndarray, target: Targets) -> np.ndarray:
    """The probability of each row's target class, ``C_t(x)``.

    Parameters
    ----------
    proba
        Class probabilities, shape ``(n, n_classes)``.
    target
        One class for all rows or one per row.

    Returns
    -------
    ``(n,)`` float64 array.
    """
    p = _proba(proba, "proba")
    t = _targets(target, len(p))
    if np.any((t < 0) | (t >= p.shape[1])):
        raise ValueError(f"target classes must lie in 0..{p.shape[1] - 1}.")
    return p[np.arange(len(p)), t]


def prediction_gain(orig_proba: np.ndarray, cf_proba: np.ndarray, target: Targets) -> np.ndarray:
    """Counterfactual prediction gain per instance, ``C_t(x_cf) - C_t(x)`` (paper, Table 1).

    Parameters
    ----------
    orig_proba, cf_proba
        The classifier's probabilities for the originals and for their counterfactuals, ``(n, n_classes)``.
    target
        The target class ``t`` (one for all rows or one per row).

    Returns
    -------
    ``(n,)`` array in ``[-1, 1]``.
    """
    o, c = _proba(orig_proba, "orig_proba"), _proba(cf_proba, "cf_proba")
    if o.shape != c.shape:
        raise ValueError(f"orig_proba {o.shape} and cf_proba {c.shape} must have the same shape.")
    return target_probability(c, target) - target_probability(o, target)


def validity(cf_proba: np.ndarray, target: Targets) -> np.ndarray:
    """Whether the classifier's predicted class for each counterfactual is its target.

    Parameters
    ----------
    cf_proba
        The classifier's probabilities for the counterfactuals, ``(n, n_classes)``.
    target
        The target class (one for all rows or one per row).

    Returns
    -------
    ``(n,)`` boolean array.
    """
    p = _proba(cf_proba, "cf_proba")
    result: np.ndarray = p.argmax(axis=1) == _targets(target, len(p))
    return result


def reconstruction_error(x: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Per-instance L2 norm (not squared, not averaged) of ``reconstruction - x``: the realism measure.

    The paper's realism is an autoencoder's reconstruction error of the counterfactual: pass
    ``x = x_cf`` and ``reconstruction = AE(x_cf)``. Lower is more realistic; compare with the same
    measure on test data and on noise.

    Parameters
    ----------
    x
        Instances, shape ``(n, ...)``.
    reconstruction
        Their reconstructions, same shape.

    Returns
    -------
    ``(n,)`` array.
    """
    a, b = _flat_pair(x, reconstruction)
    result: np.ndarray = np.sqrt(np.sum((b - a) ** 2, axis=1))
    return result


def l1_distance(x: np.ndarray, cf: np.ndarray) -> np.ndarray:
    """Per-instance L1 norm of ``cf - x`` (sum over features): the paper's actionability measure.

    Parameters
    ----------
    x, cf
        Originals and counterfactuals, shape ``(n, ...)``.

    Returns
    -------
    ``(n,)`` array.
    """
    a, b = _flat_pair(x, cf)
    result: np.ndarray = np.sum(np.abs(b - a), axis=1)
    return result


def l0_distance(x: np.ndarray, cf: np.ndarray, atol: float = 1e-6) -> np.ndarray:
    """Per-instance number of features changed by more than ``atol``.

    Parameters
    ----------
    x, cf
        Originals and counterfactuals, shape ``(n, ...)``.
    atol
        Changes up to this size do not count (float rounding).

    Returns
    -------
    ``(n,)`` integer array.
    """
    if atol < 0:
        raise ValueError(f"atol must be >= 0, got {atol}.")
    a, b = _flat_pair(x, cf)
    result: np.ndarray = np.sum(np.abs(b - a) > atol, axis=1)
    return result


def violations(x: np.ndarray, cf: np.ndarray, space: FeatureSpace, mask: Optional[np.ndarray] = None,
               atol: float = 1e-6) -> Dict[str, np.ndarray]:
    """Count, per row, the constraints a counterfactual breaks.

    Parameters
    ----------
    x, cf
        Originals and counterfactuals, flattened to ``(B, n_features)``.
    space
        The constraints.
    mask
        Optional per-row mutability (1 may change); defaults to ``space.mutable``.
    atol
        Tolerance of the range check, in the features' units.

    Returns
    -------
    ``{kind: per-row count}`` for ``immutable``, ``monotone``, ``range``, ``onehot`` and ``ordinal``.
    """
    m = np.broadcast_to(space.mutable if mask is None else mask, x.shape)
    lo = np.minimum(space.lower, x) - atol
    hi = np.maximum(space.upper, x) + atol
    onehot = np.zeros(len(x), dtype=np.int64)
    for start, stop in space.groups:
        block = cf[:, start:stop]
        onehot += ~(np.all((block == 0) | (block == 1), axis=1) & (block.sum(axis=1) == 1))
    ordinal = np.zeros(len(x), dtype=np.int64)
    for j, grid in space.grids:
        ordinal += ~np.isin(cf[:, j], grid) & (cf[:, j] != x[:, j])
    return {
        "immutable": np.sum((m == 0) & (cf != x), axis=1),
        "monotone": np.sum((space.increase > 0) & (cf < x) | (space.decrease > 0) & (cf > x), axis=1),
        "range": np.sum((cf < lo) | (cf > hi), axis=1),
        "onehot": onehot,
        "ordinal": ordinal,
    }


def constraint_violations(x: np.ndarray, cf: np.ndarray, space: FeatureSpace,
                          atol: float = 1e-6) -> Dict[str, np.ndarray]:
    """Per-instance counts of broken constraints, by kind, and their ``'total'``.

    A thin wrapper of :func:`violations` that also accepts
    instances of any shape and adds the total. Build ``space`` with the constraints that every
    method is judged against (for example from a constrained explainer's ``space_``).

    Parameters
    ----------
    x, cf
        Originals and counterfactuals, shape ``(n, ...)`` with ``space.n_features`` features each.
    space
        The constraints.
    atol
        Tolerance of the range check.

    Returns
    -------
    ``{'immutable', 'monotone', 'range', 'onehot', 'ordinal', 'total'}``, each ``(n,)`` integers.
    """
    a, b = _flat_pair(x, cf)
    if a.shape[1] != space.n_features:
        raise ValueError(f"instances have {a.shape[1]} features, the constraints {space.n_features}.")
    counts = violations(a, b, space, atol=atol)
    counts["total"] = np.sum(list(counts.values()), axis=0) if counts else np.zeros(len(a), dtype=np.int64)
    return counts


def changed_features(x: np.ndarray, cf: np.ndarray, columns: Sequence[int], atol: float = 1e-6) -> np.ndarray:
    """Per-instance number of the given (flattened) columns that a counterfactual changes.

    For example the immutable features of a data set, for a method that does not know them.

    Parameters
    ----------
    x, cf
        Originals and counterfactuals, shape ``(n, ...)``.
    columns
        Flattened column indices.
    atol
        Changes up to this size do not count.

    Returns
    -------
    ``(n,)`` integer array.
    """
    a, b = _flat_pair(x, cf)
    cols = np.asarray(list(columns), dtype=np.int64)
    if cols.size == 0:
        return np.zeros(len(a), dtype=np.int64)
    if np.any((cols < 0) | (cols >= a.shape[1])):
        raise ValueError(f"columns must lie in 0..{a.shape[1] - 1}.")
    result: np.ndarray = np.sum(np.abs(b[:, cols] - a[:, cols]) > atol, axis=1)
    return result


def changed_variables(x: np.ndarray, cf: np.ndarray, variables: Sequence[Sequence[int]],
                      atol: float = 1e-6) -> np.ndarray:
    """Per-instance number of variables that a counterfactual changes, each counted once.

    A variable is a set of (flattened) columns, for example a one-hot group: switching a
    category changes two columns but one variable. With the one-hot groups this is the number of
    categories changed per counterfactual; with the immutable variables it counts the forbidden
    changes.

    Parameters
    ----------
    x, cf
        Originals and counterfactuals, shape ``(n, ...)``.
    variables
        The columns of each variable (a single column is a variable of its own).
    atol
        A variable changes when any of its columns changes by more than this.

    Returns
    -------
    ``(n,)`` integer array.
    """
    if atol < 0:
        raise ValueError(f"atol must be >= 0, got {atol}.")
    a, b = _flat_pair(x, cf)
    changed = np.abs(b - a) > atol
    result = np.zeros(len(a), dtype=np.int64)
    for i, columns in enumerate(variables):
        cols = np.asarray(list(columns), dtype=np.int64)
        if cols.size == 0:
            raise ValueError(f"variable {i} has no columns.")
        if np.any((cols < 0) | (cols >= a.shape[1])):
            raise ValueError(f"the columns of variable {i} must lie in 0..{a.shape[1] - 1}.")
        result += changed[:, cols].any(axis=1)
    return result


@dataclass(frozen=True)
class Interval:
    """A mean with the half-width of its confidence interval.

    Attributes
    ----------
    mean
        Sample mean (NaN for no samples).
    half_width
        ``z * std / sqrt(n)`` with the sample standard deviation (``ddof=1``); 0 for one sample,
        NaN for none.
    n
        Number of samples.
    """

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def to_dict(self) -> Dict[str, float]:
        """``{'mean', 'half_width', 'n'}`` (JSON-ready floats)."""
        return {"mean": self.mean, "half_width": self.half_width, "n": self.n}


def mean_interval(values: np.ndarray, z: float = Z_95) -> Interval:
    """Mean and normal-approximation confidence interval, ``mean +- z std / sqrt(n)`` (the paper's form).

    Parameters
    ----------
    values
        Per-instance values (any shape; flattened). NaNs are not allowed.
    z
        Quantile of the interval (1.96 for 95%).

    Returns
    -------
    :class:`Interval`.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if np.any(np.isnan(v)):
        raise ValueError("values contain NaN.")
    n = int(v.size)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    if n == 1:
        return Interval(float(v[0]), 0.0, 1)
    return Interval(float(v.mean()), float(z * v.std(ddof=1) / math.sqrt(n)), n)


def proportion_interval(successes: np.ndarray, z: float = Z_95) -> Interval:
    """Share of true values with a Wilson score interval (better than the normal one near 0 and 1).

    The interval is reported as its centre's distance to its ends around the sample share,
    ``max(share - low, high - share)``, so it reads like :func:`mean_interval`'s.

    Parameters
    ----------
    successes
        Boolean (or 0/1) per-instance outcomes.
    z
        Quantile of the interval.

    Returns
    -------
    :class:`Interval` whose ``mean`` is the sample share.
    """
    s = np.asarray(successes).reshape(-1)
    n = int(s.size)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    p = float(np.mean(s.astype(np.float64)))
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Interval(p, max(p - (centre - spread), (centre + spread) - p), n)


def median(values: np.ndarray) -> float:
    """The median of a sample (for latencies, which have long right tails); NaN for none."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return float(np.median(v)) if v.size else math.nan


def ratio(numerator: float, denominator: float) -> Optional[float]:
    """``numerator / denominator``, or None when either is missing or the denominator is not positive."""
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator <= 0:
        return None
    return numerator / denominator
