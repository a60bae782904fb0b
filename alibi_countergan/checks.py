"""Checks of instances against what the networks' float32 arithmetic can hold, naming the column at fault.

The networks compute in float32 on standardised features ``(x - centre) / spread``. A value far
outside that range does not raise anywhere in the arithmetic: it turns into infinities and NaN
several steps later, where the error (a diverged loss, a predictor output with NaN) blames the
wrong thing. These checks run first, in ``fit`` and in ``explain``, before any network or
predictor call.
"""

from typing import Optional, Sequence

import numpy as np

from alibi_countergan.constraints import FeatureSpace

MAX_ABS_VALUE = 1e15
"""Largest magnitude of a raw feature value. Squares and batch sums of such values stay finite in
float32 (whose largest number is about 3.4e38)."""

MAX_CENTRE_TO_SPREAD = 1e6
"""Largest ``|centre| / spread`` of a fit column: beyond it float32 cannot tell values one spread
apart (its resolution is about 6e-8 of the magnitude)."""

MAX_STANDARDISED = 1e6
"""Largest ``|x - centre| / spread`` of an instance to explain, in units of the fit data's spread."""


def column_name(j: int, feature_names: Optional[Sequence[str]]) -> str:
    """``column 3 ('age')`` or ``column 3``."""
    return f"column {j} ({feature_names[j]!r})" if feature_names is not None else f"column {j}"


def _flat64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def _check_magnitude(flat: np.ndarray, feature_names: Optional[Sequence[str]], what: str) -> None:
    big = np.abs(flat) > MAX_ABS_VALUE
    if big.any():
        row, j = (int(i) for i in np.argwhere(big)[0])
        raise ValueError(f"{what}: {column_name(j, feature_names)} holds {flat[row, j]:.6g} (row {row}); the "
                         f"networks compute in float32 and accept values up to {MAX_ABS_VALUE:.0e} in magnitude. "
                         f"Rescale the column (for example to thousands or millions of its unit).")


def check_fit_scale(x: np.ndarray, feature_names: Optional[Sequence[str]] = None, what: str = "X") -> None:
    """Check fit data (a validated batch) column by column before any training.

    Raises
    ------
    ValueError
        Naming the column, for a value beyond :data:`MAX_ABS_VALUE` in magnitude, or a column
        whose values sit so far from zero compared with their spread that float32 cannot resolve
        them (:data:`MAX_CENTRE_TO_SPREAD`).
    """
    flat = _flat64(x)
    _check_magnitude(flat, feature_names, what)
    centre, spread = flat.mean(axis=0), flat.std(axis=0)
    offset = np.abs(centre) > MAX_CENTRE_TO_SPREAD * spread
    offset &= spread > 0
    if offset.any():
        j = int(np.flatnonzero(offset)[0])
        raise ValueError(f"{what}: {column_name(j, feature_names)} has values around {centre[j]:.6g} that vary by "
                         f"only {spread[j]:.3g}; float32 cannot resolve such changes. Subtract a reference value "
                         f"from the column (or rescale it) before fitting.")


def check_explain_values(x: np.ndarray, space: FeatureSpace, feature_names: Optional[Sequence[str]] = None,
                         what: str = "X") -> None:
    """Check instances to explain (a validated batch) against the fit data, before any network or predictor call.

    Raises
    ------
    ValueError
        Naming the column, for a value beyond :data:`MAX_ABS_VALUE` in magnitude or more than
        :data:`MAX_STANDARDISED` of the fit data's spreads from its centre.
    """
    flat = _flat64(x)
    _check_magnitude(flat, feature_names, what)
    z = np.abs(flat - np.asarray(space.center, np.float64)) / np.asarray(space.spread, np.float64)
    far = z > MAX_STANDARDISED
    if far.any():
        row, j = (int(i) for i in np.argwhere(far)[0])
        raise ValueError(f"{what}: {column_name(j, feature_names)} holds {flat[row, j]:.6g} (row {row}), "
                         f"{z[row, j]:.3g} spreads from the fit data's centre {float(space.center[j]):.6g} (spread "
                         f"{float(space.spread[j]):.3g}); the networks accept at most {MAX_STANDARDISED:.0e}. Check "
                         f"the column's units.")
