"""Turning a user's ``target_class`` into one target per instance."""

from typing import Any, Optional, Sequence, Union

import numpy as np

OTHER = "other"
"""Any class but the predicted one: the class whose counterfactual the predictor rates highest."""

TargetClass = Union[int, Sequence[int], np.ndarray, str]
"""An int, a list with one entry for all rows or one per row, or ``'other'``."""


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_target_spec(target: Any, n_classes: Optional[int] = None, what: str = "target_class") -> None:
    """Check a ``target_class`` value; class indices are checked against ``n_classes`` when known.

    Raises
    ------
    ValueError
        For anything but a non-negative int, a non-empty 1-D list of them, or ``'other'``.
    """
    if isinstance(target, str):
        if target != OTHER:
            raise ValueError(f"{what}={target!r} is not supported; use a class index, a list of class indices "
                             f"or 'other'.")
        return
    values = np.atleast_1d(np.asarray(target, dtype=object)) if not _is_int(target) else np.array([target])
    if values.ndim != 1 or values.size == 0 or not all(_is_int(v) for v in values):
        raise ValueError(f"{what}={target!r} must be a class index, a non-empty list of class indices or 'other'.")
    # Python ints, so that a huge value (2**70) is out of range rather than an OverflowError in numpy
    top = n_classes if n_classes is not None else 2 ** 63
    bad = [int(v) for v in values if not 0 <= int(v) < top]
    if bad:
        limit = f"0 to {n_classes - 1}" if n_classes is not None else "non-negative integers below 2**63"
        raise ValueError(f"{what}: class {bad[0]} is out of range; the predictor's classes are {limit}.")


def resolve_targets(target: Any, n_rows: int, n_classes: int) -> Optional[np.ndarray]:
    """One target class per row, or None for ``'other'`` (chosen later, per row).

    Raises
    ------
    ValueError
        For an invalid value, a class out of range or a list whose length is neither 1 nor ``n_rows``.
    """
    if _is_int(target) and 0 <= int(target) < n_classes:  # the common case, without the general checks
        return np.full(n_rows, int(target), dtype=np.int64)
    check_target_spec(target, n_classes)
    if isinstance(target, str):
        return None
    values = np.atleast_1d(np.asarray(target, dtype=np.int64))
    if values.size == 1:
        return np.full(n_rows, values[0], dtype=np.int64)
    if values.size != n_rows:
        raise ValueError(f"target_class has {values.size} entries for {n_rows} instances; give one for all or one "
                         f"per instance.")
    return values.copy()
