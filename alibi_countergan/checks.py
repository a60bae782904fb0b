"""Checks of user inputs, each failing with a message that names the problem.

The first part checks parameters and batches by themselves (types, ranges, shapes, a predictor's
probabilities). The second checks instances against what the networks' float32 arithmetic can
hold, naming the column at fault: the networks compute in float32 on standardised features
``(x - centre) / spread``, and a value far outside that range does not raise anywhere in the
arithmetic; it turns into infinities and NaN several steps later, where the error (a diverged
loss, a predictor output with NaN) blames the wrong thing. Those checks run first, in ``fit`` and
in ``explain``, before any network or predictor call.
"""

from typing import TYPE_CHECKING, Any, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:
    from alibi_countergan.constraints import FeatureSpace


def describe_callable(obj: Any) -> str:
    """A few words naming a predictor for messages: ``the bound method Model.predict_proba``, ``the function f``."""
    import inspect

    if inspect.ismethod(obj):
        return f"the bound method {getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return f"the function {getattr(obj, '__qualname__', obj.__name__)}"
    return f"a {type(obj).__name__}"


def check_int(name: str, value: Any, minimum: int) -> int:
    """An integer parameter ``>= minimum`` (bools are not integers here)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_number(name: str, value: Any, *, positive: bool = False, allow_inf: bool = False) -> float:
    """A finite (or, with ``allow_inf``, infinite) number ``>= 0`` (``> 0`` when ``positive``)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok:
        number = float(value)
        ok = not np.isnan(number) and (allow_inf or np.isfinite(number)) and number >= 0 and not (
            positive and number == 0)
    if not ok:
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a {'' if allow_inf else 'finite '}number {bound}, got {value!r}.")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """A boolean parameter (``True``/``False`` or numpy's bools, nothing else)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_target_proba(value: Any) -> "float | None":
    """``target_proba``: None or a probability in ``(0, 1)``."""
    if value is None:
        return None
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not ok or not 0 < float(value) < 1:
        raise ValueError(f"target_proba must be None or a probability between 0 and 1 (exclusive), got {value!r}.")
    return float(value)


def normalise_shape(shape: Any) -> Tuple[int, ...]:
    """The instance shape without the batch axis, from alibi's ``(1,) + X.shape[1:]`` or a bare shape.

    A leading 1 is taken as alibi's batch axis when more axes follow, so ``(1, 8)`` and ``(8,)``
    both mean eight features; ``(1,)`` alone means a single feature.
    """
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"shape must be a tuple of positive integers such as (1, 8), got {shape!r}.") from None
    if not dims or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in dims):
        raise ValueError(f"shape must be a tuple of positive integers such as (1, 8), got {shape!r}.")
    dims = tuple(int(d) for d in dims)
    return dims[1:] if len(dims) > 1 and dims[0] == 1 else dims


def as_instances(X: Any, feature_shape: Tuple[int, ...], what: str = "X") -> Tuple[np.ndarray, bool]:
    """Validate instances and return a float copy with a batch axis.

    Parameters
    ----------
    X
        One instance shaped ``feature_shape`` or a batch shaped ``(n,) + feature_shape``.
    feature_shape
        Shape of one instance.
    what
        Name used in error messages.

    Returns
    -------
    The batch as a new float32 array (float64 when ``X`` is float64), and whether ``X`` had no
    batch axis.

    Raises
    ------
    ValueError
        For non-numeric data, a shape that does not match, an empty batch, NaN or infinity.
    """
    try:
        arr = np.asarray(X)
    except Exception as err:  # e.g. ragged nested lists
        raise ValueError(f"{what} could not be read as a numeric array: {err}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{what} must hold numbers, got an array of dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{what} must hold real numbers, got complex dtype {arr.dtype}.")
    bare = arr.shape == feature_shape
    if bare:
        arr = arr[None]
    elif arr.shape[1:] != feature_shape or arr.ndim != len(feature_shape) + 1:
        raise ValueError(f"{what} has shape {arr.shape}; expected one instance of shape {feature_shape} or a batch "
                         f"of shape (n,) + {feature_shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"{what} is empty: it holds no instance.")
    dtype = np.float64 if arr.dtype == np.float64 else np.float32
    out = np.array(arr, dtype=dtype, copy=True)
    if not np.all(np.isfinite(out)):
        bad = np.argwhere(~np.isfinite(out.reshape(len(out), -1)))[0]
        raise ValueError(f"{what} contains NaN or infinite values (first at row {bad[0]}, flat feature {bad[1]}).")
    return out, bare


def check_probabilities(proba: Any, n_rows: int, what: str = "predictor output",
                        n_classes: "int | None" = None) -> np.ndarray:
    """Check that a predictor returned a probability matrix and return it as float32.

    Raises
    ------
    ValueError
        When the output is not an ``(n_rows, n_classes)`` matrix (at least two classes) of
        probabilities in [0, 1] whose rows sum to 1.
    """
    try:
        arr = np.asarray(proba)
        if arr.dtype != np.float32:  # float32 outputs are checked as they are (their rows sum to 1 within 1e-6)
            arr = np.asarray(arr, dtype=np.float64)
    except Exception:
        raise ValueError(f"The {what} is not numeric (got {type(proba).__name__}).") from None
    if arr.ndim != 2 or arr.shape[0] != n_rows:
        raise ValueError(f"The {what} must be a matrix of class probabilities of shape ({n_rows}, n_classes); got "
                         f"shape {arr.shape}. Wrap a model that returns labels or a single score so that it "
                         f"returns one probability per class.")
    if arr.shape[1] < 2:
        raise ValueError(f"The {what} has {arr.shape[1]} column; counterfactuals need probabilities for at least "
                         f"two classes (for a binary model return [1 - p, p]).")
    if n_classes is not None and arr.shape[1] != n_classes:
        raise ValueError(f"The {what} has {arr.shape[1]} classes but the explainer was fitted with {n_classes}.")
    low, high = float(arr.min()), float(arr.max())  # NaN and infinities show in one of the two
    if not (low >= -1e-6 and high <= 1 + 1e-6):  # False for NaN too
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(f"The {what} contains NaN or infinite values.")
        raise ValueError(f"The {what} has values outside [0, 1] (min {low:.3g}, max {high:.3g}): it "
                         f"looks like logits or scores; apply a softmax so that it returns probabilities.")
    sums = arr[:, 0] + arr[:, 1] if arr.shape[1] == 2 else arr.sum(axis=1)  # two classes: no reduction's overhead
    if not (float(sums.min()) >= 1 - 1e-3 and float(sums.max()) <= 1 + 1e-3):
        row = int(np.argmax(np.abs(sums - 1.0)))
        raise ValueError(f"The {what} rows must sum to 1 (row {row} sums to {sums[row]:.4f}): it does not look "
                         f"like class probabilities.")
    return arr.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# instances against float32 and the fit data's scale
# ---------------------------------------------------------------------------------------------

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


def check_explain_values(x: np.ndarray, space: "FeatureSpace", feature_names: Optional[Sequence[str]] = None,
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
