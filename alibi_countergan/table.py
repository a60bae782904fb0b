"""Tables as users hold them, and their encoding for the generator.

The generator works on a flat vector of numbers with every categorical variable one-hot encoded. Users
hold tables: a pandas DataFrame with numeric, integer, bool, string and categorical columns, or alibi's
tabular convention (``CounterfactualRLTabular``, ``AnchorTabular``): a numeric array whose categorical
columns hold integer codes, with ``category_map={column: [category names]}``. A :class:`TableSchema`,
learned from the fit data, records each column's kind (float, integer, bool or category), its dtype and
its known categories or whole values, and translates both ways:

- :meth:`TableSchema.read` checks a table against the schema (every column by name, its type, its values)
  and encodes it: numbers as they are, categories one-hot through pandas categoricals;
- :meth:`TableSchema.write` turns encoded rows back into the user's form, with the original columns and
  dtypes: an integer column holds whole numbers, a categorical column one of its known categories.

The schema also translates the explainer's parameters, which users give by column name or index, into
the encoded columns (:func:`encoded_config`): each numeric column keeps its name, and a categorical
column ``c`` becomes the one-hot columns ``c=category``, which the rest of the package names by ``c``.
Integer and bool columns become ordinal features on a grid of whole values, so that counterfactuals keep
them whole unless the user declares them continuous.
"""

import json
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import attr
import numpy as np
import pandas as pd
from alibi.api.interfaces import Explanation
from alibi.saving import NumpyEncoder

if TYPE_CHECKING:
    from alibi_countergan.params import CounteRGANConfig

FLOAT, INTEGER, BOOL, CATEGORY = "float", "integer", "bool", "category"
"""The kinds of column."""

FRAME, CODES = "frame", "codes"
"""The forms of a table: a pandas DataFrame, or alibi's numeric array with categories as integer codes."""

MAX_GRID = 1024
"""The most whole values an integer column's grid holds: every integer of its observed range when there
are at most this many, else its observed values, else this many quantiles of them (rounded)."""

ColumnKey = Union[int, str]


@dataclass(frozen=True)
class TableColumn:
    """One column of a user's table.

    Attributes
    ----------
    name
        The column's name.
    kind
        :data:`FLOAT`, :data:`INTEGER`, :data:`BOOL` or :data:`CATEGORY`.
    dtype
        The column's dtype in the user's table (a pandas dtype name: ``'int64'``, ``'object'``,
        ``'category'``...), restored on the way out.
    categories
        For a categorical column, its known categories, in the order of their one-hot columns.
    grid
        For an integer or bool column, the whole values a counterfactual may take.
    """

    name: str
    kind: str
    dtype: str
    categories: Tuple[Any, ...] = ()
    grid: Tuple[float, ...] = ()

    @property
    def width(self) -> int:
        """Number of encoded columns."""
        return len(self.categories) if self.kind == CATEGORY else 1

    @cached_property
    def category_index(self) -> pd.Index:
        """The categories as a pandas Index, built once: their codes are its positions (as ``pd.Categorical``
        finds them, with ``Index.get_indexer``; -1 for a value that is not a category)."""
        return pd.Index(list(self.categories))

    def encoded_names(self) -> List[str]:
        """Names of the encoded columns: the name, or ``name=category`` per category."""
        return [f"{self.name}={c}" for c in self.categories] if self.kind == CATEGORY else [self.name]


@dataclass(frozen=True)
class TableSchema:
    """The columns of a user's table and their encoding (see the module's docstring).

    Attributes
    ----------
    columns
        The columns, in the order of the encoded features.
    form
        :data:`FRAME` (a pandas DataFrame) or :data:`CODES` (a numeric array, categories as codes).
    """

    columns: Tuple[TableColumn, ...]
    form: str

    # ------------------------------------------------------------------------------------------
    # layout
    # ------------------------------------------------------------------------------------------

    @property
    def names(self) -> List[str]:
        """The column names, in order."""
        return [c.name for c in self.columns]

    @property
    def encoded_names(self) -> List[str]:
        """The names of the encoded features."""
        return [n for c in self.columns for n in c.encoded_names()]

    @property
    def n_encoded(self) -> int:
        """Number of encoded features."""
        return sum(c.width for c in self.columns)

    @property
    def starts(self) -> List[int]:
        """The first encoded feature of each column."""
        return [int(s) for s in np.cumsum([0] + [c.width for c in self.columns])[:-1]]

    @property
    def cat_vars(self) -> Dict[int, int]:
        """alibi's ``{first encoded column: n_categories}`` of the one-hot groups."""
        return {s: c.width for s, c in zip(self.starts, self.columns) if c.kind == CATEGORY}

    @property
    def has_categories(self) -> bool:
        """Whether any column is categorical (the encoding is then not the table itself)."""
        return any(c.kind == CATEGORY for c in self.columns)

    def column(self, key: ColumnKey, what: str) -> TableColumn:
        """A column by its name or its index in the table.

        Raises
        ------
        ValueError
            For an unknown name or an index out of range, naming ``what``.
        """
        if isinstance(key, (bool, np.bool_)):
            raise ValueError(f"{what}: {key!r} is a boolean, not a column index or name.")
        if isinstance(key, (int, np.integer)):
            if not 0 <= int(key) < len(self.columns):
                raise ValueError(f"{what}: column index {int(key)} is out of range for {len(self.columns)} columns.")
            return self.columns[int(key)]
        if isinstance(key, str):
            for c in self.columns:
                if c.name == key:
                    return c
            raise ValueError(f"{what}: unknown column {key!r}; the table's columns are {self.names}.")
        raise ValueError(f"{what}: {key!r} is neither a column index nor a column name.")

    def encoded_key(self, key: ColumnKey, what: str) -> str:
        """A column (by name or index) as the name the encoded features know it by: its own name, which for a
        categorical column stands for its one-hot group; the name of one one-hot column (``'sex=Male'``) is kept,
        as it stands for its group too.

        Raises
        ------
        ValueError
            For an unknown name or an index out of range, naming ``what``.
        """
        if isinstance(key, str) and key in self.encoded_names:
            return key
        return self.column(key, what).name

    # ------------------------------------------------------------------------------------------
    # learning the schema
    # ------------------------------------------------------------------------------------------

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, category_map: Optional[Mapping[ColumnKey, Sequence[Any]]] = None,
                   continuous: Sequence[ColumnKey] = (), column_order: Optional[Sequence[str]] = None
                   ) -> "TableSchema":
        """The schema of a DataFrame of fit data.

        Parameters
        ----------
        frame
            The fit data.
        category_map
            Columns (by name or index) declared categorical, with their categories: values as they appear
            in the column (a numeric column of codes can be declared categorical this way).
        continuous
            Numeric columns (by name or index) whose values are whole but that may take any value.
        column_order
            The order of the columns (``feature_names``); None keeps the DataFrame's.

        Returns
        -------
        schema
            One column per DataFrame column.

        Raises
        ------
        ValueError
            For duplicate or non-string column names, a column with missing values, a column of an
            unsupported type, or an unknown column in ``category_map`` or ``continuous``.
        """
        names = [str(c) for c in frame.columns]
        if len(set(names)) != len(names):
            duplicated = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"X: the DataFrame has duplicate column names {duplicated}.")
        if column_order is not None:
            order = [str(n) for n in column_order]
            if sorted(order) != sorted(names):
                raise ValueError(f"feature_names {order} must name the DataFrame's columns {names}, each once.")
            frame, names = frame[order], order
        declared = _keys_to_names(category_map or {}, names, "category_map")
        floats = set(_keys_to_names(continuous, names, "continuous_features"))
        columns = []
        for name in names:
            series = frame[name]
            _check_complete(series, name)
            if name in declared:
                columns.append(_declared_category(series, name, (category_map or {})[declared[name]]))
            else:
                columns.append(_infer_column(series, name, name in floats))
        return cls(columns=tuple(columns), form=FRAME)

    @classmethod
    def from_codes(cls, x: np.ndarray, category_map: Mapping[ColumnKey, Sequence[Any]],
                   feature_names: Optional[Sequence[str]], continuous: Sequence[ColumnKey] = ()) -> "TableSchema":
        """The schema of alibi's label-encoded tabular array.

        Parameters
        ----------
        x
            The fit data, ``(n, n_columns)``, categorical columns holding codes ``0 .. k - 1``.
        category_map
            ``{column index: [category names]}`` (alibi's convention).
        feature_names
            The columns' names; None names them ``'0'``, ``'1'``...
        continuous
            Numeric columns (by name or index) whose values are whole but that may take any value.

        Returns
        -------
        schema
            One column per array column.

        Raises
        ------
        ValueError
            For a category map that does not fit the array, or a categorical column holding other values than
            its codes.
        """
        n_columns = x.shape[1]
        names = [str(n) for n in feature_names] if feature_names is not None else [str(j) for j in range(n_columns)]
        frame = pd.DataFrame(x, columns=names)
        maps = _keys_to_names(category_map, names, "category_map")
        floats = set(_keys_to_names(continuous, names, "continuous_features"))
        columns = []
        for name in names:
            series = frame[name]
            if name in maps:
                column = TableColumn(name, CATEGORY, str(x.dtype),
                                     categories=_category_list(category_map[maps[name]], name))
                TableSchema._encode_column(series, column, "X", codes_form=True)  # the codes 0 .. k - 1 only
                columns.append(column)
            else:
                columns.append(_infer_column(series, name, name in floats))
        return cls(columns=tuple(columns), form=CODES)

    # ------------------------------------------------------------------------------------------
    # reading and writing
    # ------------------------------------------------------------------------------------------

    def read(self, X: Any, what: str = "X") -> Tuple[np.ndarray, Optional[pd.Index], Optional[List[str]]]:
        """Check a table against the schema and encode it.

        Parameters
        ----------
        X
            A DataFrame (for a schema of that form; a Series is one row), or for the codes form an array of
            one row ``(n_columns,)`` or a batch ``(n, n_columns)``. Not modified.
        what
            The argument's name, for messages.

        Returns
        -------
        encoded
            The rows, encoded: float64, ``(n, n_encoded)``.
        index
            The DataFrame's index (None for an array).
        order
            The DataFrame's column order (None for an array).

        Raises
        ------
        ValueError
            For a missing or unknown column, a column of the wrong type, a missing value or an unknown
            category, naming the column and the value, or an empty table.
        """
        if self.form == FRAME:
            frame = self._as_frame(X, what)
            index, order = frame.index, [str(c) for c in frame.columns]
        else:
            frame = self._codes_frame(X, what)
            index, order = None, None
        if len(frame) == 0:
            raise ValueError(f"{what} is empty: it holds no instance.")
        blocks = [self._encode_column(frame[c.name], c, what, self.form == CODES) for c in self.columns]
        return np.concatenate(blocks, axis=1), index, order

    def write(self, encoded: np.ndarray, index: Optional[pd.Index] = None,
              order: Optional[Sequence[str]] = None, dtype: Any = np.float64) -> Union[pd.DataFrame, np.ndarray]:
        """Encoded rows in the user's form.

        Parameters
        ----------
        encoded
            ``(n, n_encoded)`` rows with exact one-hot groups.
        index
            The DataFrame's index (frame form); None numbers the rows.
        order
            The columns' order (frame form); None is the schema's.
        dtype
            The array's dtype (codes form).

        Returns
        -------
        table
            A DataFrame with the original dtypes, or an array with categories as codes.
        """
        values = self.column_values(encoded, dtype=dtype)
        if self.form == CODES:
            return np.stack([values[n] for n in self.names], axis=1)
        frame = pd.DataFrame(values, columns=self.names)
        if index is not None:
            frame.index = index
        return frame if order is None else frame[list(order)]

    def column_values(self, encoded: np.ndarray, names: Optional[Sequence[str]] = None,
                      dtype: Any = np.float64) -> Dict[str, Any]:
        """The values of encoded rows' columns in the user's form, by name: what :meth:`write` puts in each
        column (categories by their labels, or as codes of ``dtype`` in the codes form).

        Parameters
        ----------
        encoded
            ``(n, n_encoded)`` rows with exact one-hot groups.
        names
            The columns to write (None: all of them).
        dtype
            The codes form's dtype.

        Returns
        -------
        values
            Per column name, its ``n`` values (an array, or a pandas array of the column's dtype).
        """
        encoded = np.asarray(encoded).reshape(len(encoded), -1)
        wanted = None if names is None else set(names)
        values: Dict[str, Any] = {}
        for start, c in zip(self.starts, self.columns):
            if wanted is not None and c.name not in wanted:
                continue
            block = encoded[:, start:start + c.width]
            if c.kind == CATEGORY:
                codes = block.argmax(axis=1)
                values[c.name] = np.asarray(codes, dtype=dtype) if self.form == CODES else _categories_out(codes, c)
            elif self.form == CODES:
                values[c.name] = np.asarray(block[:, 0], dtype=dtype)
            else:
                values[c.name] = _numbers_out(block[:, 0], c)
        return values

    def moved(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Per row and column, whether the column's encoded values differ, ``(n, n_columns)``: a column that did
        not move is written alike from both (so it cannot show a change)."""
        return np.logical_or.reduceat(before != after, self.starts, axis=1)

    def _as_frame(self, X: Any, what: str) -> pd.DataFrame:
        X = as_frame(X)
        if not isinstance(X, pd.DataFrame):
            raise ValueError(f"{what} must be a pandas DataFrame with the columns {self.names}, as the explainer was "
                             f"fitted on one; got {type(X).__name__}.")
        names = [str(c) for c in X.columns]
        missing = [n for n in self.names if n not in names]
        extra = [n for n in names if n not in self.names]
        if missing or extra:
            parts = ([f"lacks the column(s) {missing}"] if missing else []) + (
                [f"has the unknown column(s) {extra}"] if extra else [])
            raise ValueError(f"{what} {' and '.join(parts)}; the explainer was fitted on the columns {self.names}.")
        if len(set(names)) != len(names):
            raise ValueError(f"{what} has duplicate column names.")
        return X.set_axis(names, axis=1)

    def _codes_frame(self, X: Any, what: str) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            raise ValueError(f"{what}: this explainer was fitted on alibi's label-encoded array (category_map); pass "
                             f"a numeric array of {len(self.columns)} columns, not a DataFrame.")
        try:
            arr = np.asarray(X)
        except Exception as err:
            raise ValueError(f"{what} could not be read as a numeric array: {err}") from None
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise ValueError(f"{what} must hold numbers (categories as their codes), got an array of dtype "
                             f"{arr.dtype}.")
        n = len(self.columns)
        if arr.ndim == 1 and arr.shape == (n,):
            arr = arr[None]
        elif arr.ndim == 3 and arr.shape[1:] == (1, n):
            arr = arr[:, 0]
        if arr.ndim != 2 or arr.shape[1] != n:
            raise ValueError(f"{what} has shape {arr.shape}; expected one row of {n} columns or a batch (n, {n}).")
        return pd.DataFrame(arr, columns=self.names)

    @staticmethod
    def _encode_column(series: pd.Series, c: TableColumn, what: str, codes_form: bool = False) -> np.ndarray:
        _check_complete(series, c.name, what)
        if c.kind == CATEGORY:
            if codes_form:  # alibi's convention: the column holds the codes 0 .. k - 1
                values = series.to_numpy(dtype=np.float64)
                whole = (values == np.round(values)) & (values >= 0) & (values < c.width)
                codes = np.where(whole, values, -1).astype(np.int64)
            else:
                codes = c.category_index.get_indexer(series.to_numpy())
            if np.any(codes < 0):
                row = int(np.flatnonzero(codes < 0)[0])
                raise ValueError(f"{what}: column {c.name!r} holds the unknown category {series.iloc[row]!r} (row "
                                 f"{row}); its known categories are {list(c.categories)}.")
            return np.eye(c.width, dtype=np.float64)[codes]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            numbers = pd.to_numeric(series, errors="coerce")  # numbers held as objects (parsed JSON...) are fine
            if numbers.isna().any():
                row = int(np.flatnonzero(numbers.isna().to_numpy())[0])
                raise ValueError(f"{what}: column {c.name!r} must hold numbers ({c.kind}), got dtype {series.dtype} "
                                 f"with {series.iloc[row]!r} (row {row}).")
            series = numbers
        values = series.to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(values)):
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(f"{what}: column {c.name!r} holds {values[row]} (row {row}); values must be finite.")
        if c.kind in (INTEGER, BOOL):
            allowed = np.isin(values, (0.0, 1.0)) if c.kind == BOOL else values == np.round(values)
            if not np.all(allowed):
                row = int(np.flatnonzero(~allowed)[0])
                kind = "a bool column and takes True/False (or 0/1)" if c.kind == BOOL else (
                    "an integer column and takes whole numbers")
                raise ValueError(f"{what}: column {c.name!r} holds {values[row]} (row {row}); it was fitted as {kind} "
                                 f"(declare it in continuous_features to allow any value).")
        return values[:, None]

    # ------------------------------------------------------------------------------------------
    # saving
    # ------------------------------------------------------------------------------------------

    def to_config(self) -> Dict[str, Any]:
        """The schema as plain JSON values."""
        return {"form": self.form, "columns": [
            {"name": c.name, "kind": c.kind, "dtype": c.dtype, "categories": [_plain(v) for v in c.categories],
             "grid": list(c.grid)} for c in self.columns]}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "TableSchema":
        """Inverse of :meth:`to_config`."""
        columns = tuple(TableColumn(str(c["name"]), str(c["kind"]), str(c["dtype"]),
                                    categories=tuple(c.get("categories", ())),
                                    grid=tuple(float(v) for v in c.get("grid", ())))
                        for c in config["columns"])
        return cls(columns=columns, form=str(config["form"]))

    def with_grid(self, name: str, grid: Sequence[float]) -> "TableSchema":
        """A copy with another grid for one column."""
        return replace(self, columns=tuple(replace(c, grid=tuple(grid)) if c.name == name else c
                                           for c in self.columns))


# ----------------------------------------------------------------------------------------------
# columns
# ----------------------------------------------------------------------------------------------


def is_table(X: Any) -> bool:
    """Whether ``X`` is a pandas DataFrame (or Series, one row)."""
    return isinstance(X, (pd.DataFrame, pd.Series))


def as_frame(X: Any) -> Any:
    """A Series as a one-row DataFrame (its values' own dtypes); anything else as it is."""
    return X.to_frame().T.infer_objects() if isinstance(X, pd.Series) else X


def integer_grid(values: np.ndarray) -> Tuple[float, ...]:
    """The whole values an integer column may take (see :data:`MAX_GRID`)."""
    lower, upper = float(values.min()), float(values.max())
    if upper - lower + 1 <= MAX_GRID:
        return tuple(np.arange(lower, upper + 1, dtype=np.float64).tolist())
    seen = np.unique(values)
    if seen.size > MAX_GRID:
        seen = np.unique(np.round(np.quantile(values, np.linspace(0.0, 1.0, MAX_GRID))))
    return tuple(seen.astype(np.float64).tolist())


def _infer_column(series: pd.Series, name: str, continuous: bool) -> TableColumn:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if continuous:
            raise ValueError(f"continuous_features: column {name!r} is categorical, not numeric.")
        return TableColumn(name, CATEGORY, "category", categories=_category_list(list(dtype.categories), name))
    if pd.api.types.is_bool_dtype(dtype):
        return TableColumn(name, BOOL, str(dtype), grid=(0.0, 1.0))
    if pd.api.types.is_numeric_dtype(dtype):
        values = series.to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(values)):
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(f"X: column {name!r} holds {values[row]} (row {row}); values must be finite.")
        whole = pd.api.types.is_integer_dtype(dtype) or bool(np.all(values == np.round(values)))
        if whole and not continuous:
            return TableColumn(name, INTEGER, str(dtype), grid=integer_grid(values))
        return TableColumn(name, FLOAT, str(dtype))
    if continuous:
        raise ValueError(f"continuous_features: column {name!r} holds {dtype} values, not numbers.")
    categories = sorted(series.unique(), key=lambda v: (str(type(v)), v))
    kind = "string" if isinstance(dtype, pd.StringDtype) else "object"
    return TableColumn(name, CATEGORY, kind, categories=_category_list(categories, name))


def _declared_category(series: pd.Series, name: str, categories: Sequence[Any]) -> TableColumn:
    known = _category_list(categories, name)
    dtype = "category" if isinstance(series.dtype, pd.CategoricalDtype) else str(series.dtype)
    column = TableColumn(name, CATEGORY, dtype, categories=known)
    TableSchema._encode_column(series, column, "X")  # every fit value is one of the given categories
    return column


def _category_list(categories: Sequence[Any], name: str) -> Tuple[Any, ...]:
    values = tuple(_plain(v) for v in categories)
    if len(values) < 2:
        raise ValueError(f"Column {name!r} is categorical with {len(values)} category ({list(values)}); a "
                         f"counterfactual needs at least two (drop the column, or declare its categories in "
                         f"category_map).")
    if len(set(values)) != len(values):
        raise ValueError(f"category_map: the categories of column {name!r} repeat a value: {list(values)}.")
    if "=" in name:
        raise ValueError(f"Categorical column {name!r}: names of categorical columns may not contain '=' (the "
                         f"encoded columns are named 'column=category').")
    return values


def _plain(value: Any) -> Any:
    """A category as a plain Python value (numpy scalars become int, float, bool or str)."""
    return value.item() if isinstance(value, np.generic) else value


def _check_complete(series: pd.Series, name: str, what: str = "X") -> None:
    missing = pd.isna(series.to_numpy())  # on the array: a tenth of Series.isna's cost for one row
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise ValueError(f"{what}: column {name!r} has a missing value ({series.iloc[row]!r}, row {row}); fill or "
                         f"drop missing values first.")


def _keys_to_names(keys: Union[Sequence[ColumnKey], Mapping[ColumnKey, Any]], names: Sequence[str],
                   what: str) -> Dict[str, ColumnKey]:
    """``{column name: key as given}`` for column indices or names."""
    out: Dict[str, ColumnKey] = {}
    for key in keys:
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer, str)):
            raise ValueError(f"{what}: {key!r} is neither a column index nor a column name.")
        if isinstance(key, str):
            if key not in names:
                raise ValueError(f"{what}: unknown column {key!r}; the table's columns are {list(names)}.")
            out[key] = key
        else:
            if not 0 <= int(key) < len(names):
                raise ValueError(f"{what}: column index {int(key)} is out of range for {len(names)} columns.")
            out[names[int(key)]] = key
    return out


def _categories_out(codes: np.ndarray, c: TableColumn) -> Any:
    values = _objects([c.categories[k] for k in codes])
    if c.dtype == "category":
        return pd.Categorical(values, categories=list(c.categories))
    if c.dtype == "string":
        return pd.array(values, dtype="string")
    try:
        return values.astype(c.dtype) if c.dtype != "object" else values
    except (TypeError, ValueError):
        return values


def _numbers_out(values: np.ndarray, c: TableColumn) -> Any:
    if c.kind == BOOL:
        values = values > 0.5
    elif c.kind == INTEGER:
        values = np.round(values)
    dtype = pd.api.types.pandas_dtype(c.dtype)
    return values.astype(dtype) if isinstance(dtype, np.dtype) else pd.array(values, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# the explainer's parameters, in the encoded columns
# ----------------------------------------------------------------------------------------------


def encoded_config(config: "CounteRGANConfig", schema: TableSchema) -> "CounteRGANConfig":
    """The explainer's parameters translated from the user's columns to the encoded features.

    Columns given by index become their names; a categorical column's name stands for its one-hot group.
    Integer and bool columns become ordinal features on their grid of whole values (unless the user gave
    a grid); ``feature_range`` bounds, given per column, bound the numeric columns.

    Parameters
    ----------
    config
        The parameters, as the user gave them (``shape`` counts the table's columns).
    schema
        The table's schema.

    Returns
    -------
    config
        The parameters of the generator's feature space: ``shape``, ``feature_names`` and ``cat_vars``
        of the encoding, every constraint by encoded name.

    Raises
    ------
    ValueError
        For a parameter that names an unknown column, or a shape that does not count the table's columns.
    """
    n_columns = len(schema.columns)
    if config.n_features != n_columns or len(config.feature_shape) != 1:
        raise ValueError(f"shape={config.shape} does not fit the table's {n_columns} columns {schema.names}; pass "
                         f"shape=(1, {n_columns}).")
    if config.cat_vars:
        raise ValueError("cat_vars describes one-hot columns of an encoded array; a table's categorical columns are "
                         "found from its dtypes or given by category_map. Pass one or the other.")

    ordinal: Dict[str, Optional[Sequence[float]]] = {
        c.name: c.grid for c in schema.columns if c.kind in (INTEGER, BOOL)}
    given = config.ordinal_features
    if isinstance(given, Mapping):
        ordinal.update({schema.encoded_key(k, "ordinal_features"): g for k, g in given.items()})
    elif given is not None:
        ordinal.update({schema.encoded_key(k, "ordinal_features"): None for k in given})
    cost = config.category_cost
    return config.evolve(
        shape=(1, schema.n_encoded), feature_names=schema.encoded_names, cat_vars=schema.cat_vars, ohe=True,
        category_map=None, continuous_features=[],
        immutable_features=[schema.encoded_key(k, "immutable_features") for k in config.immutable_features],
        monotone={schema.encoded_key(k, "monotone"): d for k, d in config.monotone.items()},
        ordinal_features={k: (None if g is None else list(g)) for k, g in ordinal.items()},
        category_cost=({schema.encoded_key(k, "category_cost"): v for k, v in cost.items()}
                       if isinstance(cost, Mapping) else cost),
        feature_range=None if config.feature_range is None else tuple(
            _encoded_bound(b, schema, side) for b, side in zip(config.feature_range, (0.0, 1.0))),
    )


def _encoded_bound(bound: Any, schema: TableSchema, category_bound: float) -> np.ndarray:
    """A feature_range bound per table column (or one number) as a bound per encoded feature."""
    values = np.asarray(bound, dtype=np.float64).reshape(-1)
    if values.size not in (1, len(schema.columns)):
        raise ValueError(f"feature_range: a bound must be one number or one per column ({len(schema.columns)}), "
                         f"got {values.size} values.")
    per_column = np.broadcast_to(values, (len(schema.columns),))
    return np.concatenate([np.full(c.width, category_bound) if c.kind == CATEGORY else per_column[j:j + 1]
                           for j, c in enumerate(schema.columns)])


# ----------------------------------------------------------------------------------------------
# explanations in the user's form
# ----------------------------------------------------------------------------------------------


class TableExplanation(Explanation):
    """An :class:`alibi.api.interfaces.Explanation` whose data may hold DataFrames: :meth:`to_json` writes each
    as ``{"columns": [...], "index": [...], "data": [[...], ...]}`` (pandas' ``split`` orientation)."""

    def to_json(self) -> str:
        """The explanation as JSON, DataFrames included (see the class docstring)."""
        return json.dumps(attr.asdict(self, value_serializer=_frame_as_split), cls=NumpyEncoder)


def _frame_as_split(instance: Any, field: Any, value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        return json.loads(value.to_json(orient="split", date_format="iso"))
    return value


def table_explanation(explanation: Explanation, schema: TableSchema, index: Optional[pd.Index],
                      order: Optional[Sequence[str]]) -> TableExplanation:
    """An explanation of encoded rows, in the user's form.

    ``cf['X']`` (and each diverse counterfactual's ``X``) becomes a table of the fit data's form;
    ``residual`` holds the change of each numeric column (a DataFrame of them, or for alibi's label-encoded
    arrays the difference with NaN in the categorical columns); ``changes`` lists what each instance's
    counterfactual changes, one row per changed column (``instance``, ``feature``, ``from``, ``to``); and
    ``recourse`` says it in words per instance (``'priors_count: 3 -> 0; c_charge_degree: F -> M'``).

    Parameters
    ----------
    explanation
        The explanation of the encoded rows (``cf['X']`` of shape ``(n, n_encoded)``).
    schema
        The table's schema.
    index, order
        The DataFrame's index and column order (None for an array).

    Returns
    -------
    explanation
        The same explanation, in the user's form.
    """
    data = dict(explanation.data)
    n = len(data["residual"])
    cf_flat = np.asarray(data["cf"]["X"]).reshape(n, -1)
    x_flat = cf_flat - np.asarray(data["residual"]).reshape(cf_flat.shape)
    data["cf"] = dict(data["cf"], X=schema.write(cf_flat, index, order))
    # the originals and the changes are written for the columns that moved in some row alone: the others hold
    # the same values before and after (no change, a residual of 0), and writing a column costs as much as
    # the rest of a one-row explanation
    moved = schema.moved(x_flat, cf_flat).any(axis=0)
    names = [c.name for c, m in zip(schema.columns, moved) if m]
    before, after = schema.column_values(x_flat, names), schema.column_values(cf_flat, names)
    instances = list(range(n)) if index is None else list(index)  # the codes form has no index
    data["residual"] = _residual(schema, before, after, n, index)
    records = _change_records(schema, before, after, instances, codes=schema.form == CODES)
    data["changes"] = _changes_table(records)
    data["recourse"] = _lines(records, instances)
    if "counterfactuals" in data:
        data["counterfactuals"] = _user_counterfactuals(data["counterfactuals"], schema, order)
    return TableExplanation(meta=explanation.meta, data=data)


def _instances(table: Union[pd.DataFrame, np.ndarray]) -> List[Any]:
    return list(table.index) if isinstance(table, pd.DataFrame) else list(range(len(table)))


def _residual(schema: TableSchema, before: Dict[str, Any], after: Dict[str, Any], n: int,
              index: Optional[pd.Index]) -> Any:
    """The change of each numeric column, from the values of the columns that moved (:meth:`TableSchema.moved`;
    the others change by 0): a DataFrame of the numeric columns (frame form), or an array of every column with
    NaN in the categorical ones (codes form)."""
    if schema.form == CODES:
        out = np.zeros((n, len(schema.columns)))
        for j, c in enumerate(schema.columns):
            if c.kind == CATEGORY:
                out[:, j] = np.nan
            elif c.name in after:
                out[:, j] = after[c.name] - before[c.name]
        return out
    numeric = [c for c in schema.columns if c.kind != CATEGORY]
    columns: Dict[str, np.ndarray] = {}
    for c in numeric:  # whole columns (integer, bool) change by whole numbers
        dtype = np.int64 if c.kind in (INTEGER, BOOL) else np.float64
        columns[c.name] = (_as_numbers(after[c.name], dtype) - _as_numbers(before[c.name], dtype)
                           if c.name in after else np.zeros(n, dtype=dtype))
    return pd.DataFrame(columns, index=pd.RangeIndex(n) if index is None else index, columns=[c.name for c in numeric])


def _as_numbers(values: Any, dtype: Any) -> np.ndarray:
    """A column's values (a numpy or pandas array) as a numpy array of ``dtype``."""
    return values.to_numpy(dtype=dtype) if hasattr(values, "to_numpy") else np.asarray(values, dtype=dtype)


def changes_frame(schema: TableSchema, x: Any, cf: Any) -> pd.DataFrame:
    """What each counterfactual changes: one row per changed column of an instance.

    Parameters
    ----------
    schema
        The table's schema.
    x, cf
        Originals and counterfactuals in the user's form (DataFrames with the same index, or arrays with
        categories as codes, which are shown by their names).

    Returns
    -------
    changes
        Columns ``instance`` (the DataFrame's index label, or the row number), ``feature``, ``from``, ``to``;
        rows in the order of the instances, then of the columns.
    """
    def columns(table: Any) -> Dict[str, Any]:
        if isinstance(table, pd.DataFrame):
            return {c.name: table[c.name].array for c in schema.columns}
        return {c.name: table[:, j] for j, c in enumerate(schema.columns)}

    return _changes_table(_change_records(schema, columns(x), columns(cf), _instances(x),
                                          codes=not isinstance(x, pd.DataFrame)))


Change = Tuple[Any, str, Any, Any]  # instance, feature, from, to


def _change_records(schema: TableSchema, before: Dict[str, Any], after: Dict[str, Any], instances: Sequence[Any],
                    codes: bool) -> List[Change]:
    """The rows of :func:`changes_frame` from the values of the columns by name (those missing from ``after`` do
    not change), in the order of the instances, then of the columns; ``codes``: categories given as codes."""
    records = []
    for j, c in enumerate(schema.columns):
        if c.name not in after:
            continue
        was, now = _readable(before[c.name], c, codes), _readable(after[c.name], c, codes)
        for i in np.flatnonzero(was != now):
            records.append((int(i), j, instances[i], c.name, was[i], now[i]))
    records.sort(key=lambda r: (r[0], r[1]))
    return [r[2:] for r in records]


def _changes_table(records: List[Change]) -> pd.DataFrame:
    """The changes as a DataFrame; ``from`` and ``to`` keep each value's own type (a count stays an integer
    beside a changed float or category, where pandas would make the column float)."""
    columns = ["instance", "feature", "from", "to"]
    if not records:
        return pd.DataFrame([], columns=columns)
    instances, features, was, now = zip(*records)
    return pd.DataFrame({"instance": list(instances), "feature": list(features), "from": _objects(was),
                         "to": _objects(now)}, columns=columns)


def _objects(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _readable(values: Any, c: TableColumn, codes: bool) -> np.ndarray:
    """A column's values as a person reads them: categories by their names (``codes``: given as codes), whole
    numbers as integers."""
    array = np.asarray(values, dtype=object)
    if c.kind == CATEGORY and codes:
        return np.array([c.categories[int(v)] for v in array], dtype=object)
    if c.kind == INTEGER:
        return np.array([int(round(float(v))) for v in array], dtype=object)
    if c.kind == BOOL:
        return np.array([bool(v) for v in array], dtype=object)
    return np.array([_plain(v) for v in array], dtype=object)


def recourse_lines(changes: pd.DataFrame, instances: Sequence[Any]) -> List[str]:
    """Per instance, its changes in words: ``'priors_count: 3 -> 0; c_charge_degree: F -> M'`` (``'no change'``
    when there is none)."""
    return _lines([row[:4] for row in changes.itertuples(index=False, name=None)], instances)


def _lines(records: Sequence[Change], instances: Sequence[Any]) -> List[str]:
    by_instance: Dict[Any, List[str]] = {}
    for instance, feature, was, now in records:
        by_instance.setdefault(instance, []).append(f"{feature}: {_number_text(was)} -> {_number_text(now)}")
    return ["; ".join(by_instance[i]) if i in by_instance else "no change" for i in instances]


def _number_text(value: Any) -> str:
    """A value in words: floats to 4 significant digits, and whole from 10,000 on (``55500``, where ``.4g``
    would write ``5.55e+04``); anything else as it is (integers whole, categories by their labels)."""
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return f"{number:.0f}" if abs(number) >= 1e4 else f"{number:.4g}"
    return str(value)


def _user_counterfactuals(diverse: Any, schema: TableSchema, order: Optional[Sequence[str]]) -> Any:
    if isinstance(diverse, list):
        return [_user_counterfactuals(d, schema, order) for d in diverse]
    k = len(diverse["X"])
    return dict(diverse, X=schema.write(np.asarray(diverse["X"]).reshape(k, -1), None, order))
