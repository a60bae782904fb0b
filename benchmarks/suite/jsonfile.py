"""The benchmark's one JSON encoder: what a step or the report writes, with numpy values as plain JSON.

numpy scalars become Python numbers (or booleans), numpy arrays nested lists, paths strings.
Anything else that JSON cannot hold is an error naming its type: nothing is written as its repr.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """``json.dumps``'s ``default``: the JSON form of a numpy value or a path.

    Raises
    ------
    TypeError
        For any other type.
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def dumps(value: Any, indent: int = 1) -> str:
    """``value`` as JSON text, numpy values and paths included (see :func:`plain`)."""
    return json.dumps(value, indent=indent, default=plain)


def write(path: Path, value: Any, indent: int = 1) -> None:
    """Write ``value`` as JSON text to ``path`` (see :func:`dumps`)."""
    path.write_text(dumps(value, indent))
