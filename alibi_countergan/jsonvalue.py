"""The package's one JSON encoder: parameters, feature spaces, metadata and histories as JSON values.

Two renderings of the same walk over a value:

- :func:`to_json_value` is lossless: :func:`from_json_value` turns its output back into an equal
  value (tuples, numpy arrays with their dtype, dicts with non-string keys and infinities are
  tagged). The save file (``countergan.json``) is written with it.
- :func:`plain_json_value` is for reading: tuples, sets and arrays become lists, keys become
  strings, infinities the strings ``'inf'`` / ``'-inf'``, and any other object its ``repr``. An
  explainer's ``meta["params"]`` is written with it (alibi's metadata is plain JSON).
"""

import math
from typing import Any, Mapping

import numpy as np

_TAGS = ("__tuple__", "__ndarray__", "__dict__", "__float__")


def to_json_value(value: Any, where: str = "value") -> Any:
    """A JSON-compatible form of ``value`` that :func:`from_json_value` turns back into an equal value.

    Parameters
    ----------
    value
        None, a bool, number, string, list, tuple, dict (any hashable keys) or numpy array of numbers,
        nested in any way.
    where
        What the value is, for error messages (``'params'``).

    Returns
    -------
    json_value
        Made of None, bools, numbers, strings, lists and string-keyed dicts only.

    Raises
    ------
    TypeError
        For any other value (naming where it is).
    """
    return _encode(value, where, exact=True)


def plain_json_value(value: Any) -> Any:
    """A JSON-compatible form of ``value`` for reading, not for reading back (see the module's docstring).

    Parameters
    ----------
    value
        Any value.

    Returns
    -------
    json_value
        Made of None, bools, numbers, strings, lists and string-keyed dicts only.
    """
    return _encode(value, "value", exact=False)


def from_json_value(value: Any) -> Any:
    """Inverse of :func:`to_json_value`.

    Parameters
    ----------
    value
        A value as :func:`to_json_value` returns it (after a JSON round trip).

    Returns
    -------
    value
        The original value.
    """
    if isinstance(value, list):
        return [from_json_value(v) for v in value]
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(from_json_value(v) for v in value["__tuple__"])
        if "__ndarray__" in value:
            return np.asarray(from_json_value(value["__ndarray__"]), dtype=np.dtype(value["dtype"]))
        if "__dict__" in value:
            return {_hashable(from_json_value(k)): from_json_value(v) for k, v in value["__dict__"]}
        if "__float__" in value:
            return float(value["__float__"])
        return {k: from_json_value(v) for k, v in value.items()}
    return value


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


def _encode(value: Any, where: str, exact: bool) -> Any:
    """The walk behind both renderings; ``exact`` selects the lossless one."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isfinite(number):
            return number
        return {"__float__": repr(number)} if exact else repr(number)
    if isinstance(value, np.ndarray):
        if not exact:
            return _encode(value.tolist(), where, exact)
        if value.dtype == object or value.dtype.kind not in "biuf":
            raise TypeError(f"{where}: cannot store a numpy array of dtype {value.dtype}.")
        return {"__ndarray__": _encode(value.tolist(), where, exact), "dtype": value.dtype.str}
    if isinstance(value, tuple) and exact:
        return {"__tuple__": [_encode(v, where, exact) for v in value]}
    if isinstance(value, (list, tuple)) or (not exact and isinstance(value, (range, set, frozenset))):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [_encode(v, where, exact) for v in items]
    if isinstance(value, Mapping):
        return _encode_mapping(value, where, exact)
    if exact:
        raise TypeError(f"{where}: cannot store a value of type {type(value).__name__} ({value!r}) as JSON.")
    return repr(value)


def _encode_mapping(value: Mapping[Any, Any], where: str, exact: bool) -> Any:
    if not exact:
        return {str(k): _encode(v, where, exact) for k, v in value.items()}
    if all(isinstance(k, str) for k in value) and not any(k in _TAGS for k in value):
        return {k: _encode(v, f"{where}[{k!r}]", exact) for k, v in value.items()}
    return {"__dict__": [[_encode(k, where, exact), _encode(v, f"{where}[{k!r}]", exact)]
                         for k, v in value.items()]}
