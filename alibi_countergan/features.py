"""The user's feature parameters, parsed: names, immutable, monotone, categorical and ordinal features.

Turns what a user passes to :class:`~alibi_countergan.explainer.CounteRGAN` (feature indices or
names, alibi's ``cat_vars``, ``monotone`` and ``ordinal_features`` mappings) into column indices,
with an error naming the parameter for anything unknown (:func:`parse_constraints`), and builds the
:class:`~alibi_countergan.constraints.FeatureSpace` that the projection enforces from them and the
fit data (:func:`build_feature_space`).
"""

import functools
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from alibi_countergan.constraints import FeatureSpace

FeatureKey = Union[int, str]
"""A feature given by its (flat) column index or by its name in ``feature_names``."""

MonotoneSpec = Mapping[FeatureKey, Union[str, int]]
"""Feature -> ``'increasing'`` (or ``+1``) / ``'decreasing'`` (or ``-1``)."""

_DIRECTIONS = {"increasing": 1, "increase": 1, "+": 1, 1: 1, "decreasing": -1, "decrease": -1, "-": -1, -1: -1}


def variable_columns(name: str, feature_names: Optional[Sequence[str]],
                     groups: Sequence[Tuple[int, int]]) -> Optional[List[int]]:
    """The columns of the one-hot group of categorical variable ``name``, or None if no column is named for it.

    One-hot columns are named ``'variable=category'`` (this project's convention, e.g. ``'sex=Male'``), so a
    variable is named by the part before ``'='``.

    Raises
    ------
    ValueError
        When columns are named for the variable but do not form one declared one-hot group (``cat_vars``).
    """
    if feature_names is None:
        return None
    members = [j for j, n in enumerate(feature_names) if n.split("=", 1)[0] == name and "=" in n]
    if not members:
        return None
    for start, stop in groups:
        if members == list(range(start, stop)):
            return members
    raise ValueError(f"{name!r} names the columns {[feature_names[j] for j in members]}, which are not one "
                     f"categorical group of `cat_vars`; declare the group in cat_vars or name a single column.")


def resolve_features(keys: Sequence[FeatureKey], n_features: int,
                     feature_names: Optional[Sequence[str]], what: str,
                     groups: Sequence[Tuple[int, int]] = ()) -> List[int]:
    """Map feature indices or names to column indices, with a clear error for unknown ones.

    A name may be a column's name or, for a one-hot categorical variable whose columns are named
    ``'variable=category'``, the variable's name (``'sex'`` for ``'sex=Female'`` and ``'sex=Male'``):
    it then stands for every column of the group.

    Parameters
    ----------
    keys
        Column indices or names.
    n_features
        Number of (flat) features.
    feature_names
        Name of every column, or None.
    what
        The parameter's name, for error messages.
    groups
        One-hot groups as ``(start, stop)`` column ranges, for variable names.

    Returns
    -------
    The column indices, in the order given (a variable's columns in their order).
    """
    names = list(feature_names) if feature_names is not None else None
    out: List[int] = []
    for key in keys:
        if isinstance(key, (bool, np.bool_)):
            raise ValueError(f"{what}: {key!r} is a boolean, not a feature index or name.")
        if isinstance(key, (int, np.integer)):
            if not 0 <= int(key) < n_features:
                raise ValueError(f"{what}: feature index {int(key)} is out of range for {n_features} features.")
            out.append(int(key))
        elif isinstance(key, str):
            if names is None:
                raise ValueError(f"{what}: feature {key!r} is given by name but no `feature_names` were passed.")
            if key in names:
                out.append(names.index(key))
                continue
            members = variable_columns(key, names, groups)
            if members is None:
                variables = sorted({n.split("=", 1)[0] for n in names if "=" in n})
                known = f"; categorical variables: {variables}" if variables else ""
                raise ValueError(f"{what}: unknown feature name {key!r}; known names: {names}{known}.")
            out.extend(members)
        else:
            raise ValueError(f"{what}: {key!r} is neither a feature index nor a feature name.")
    return out


def resolve_feature(key: FeatureKey, n_features: int, feature_names: Optional[Sequence[str]], what: str,
                    groups: Sequence[Tuple[int, int]] = ()) -> int:
    """One column index for a feature that must be a single column (not a categorical variable)."""
    columns = resolve_features([key], n_features, feature_names, what, groups)
    if len(columns) != 1:
        raise ValueError(f"{what}: {key!r} is a categorical variable ({len(columns)} one-hot columns); its "
                         f"categories have no order, so it cannot be used here.")
    return columns[0]


def onehot_groups(cat_vars: Optional[Mapping[int, int]], ohe: bool, n_features: int) -> Tuple[Tuple[int, int], ...]:
    """One-hot groups from alibi's ``cat_vars={first_column: n_categories}`` (when ``ohe`` is True)."""
    if not cat_vars or not ohe:
        return ()
    groups: List[Tuple[int, int]] = []
    for start, size in sorted((int(k), int(v)) for k, v in cat_vars.items()):
        if size < 2:
            raise ValueError(f"cat_vars: the group starting at column {start} has {size} categories; need 2 or more.")
        if start < 0 or start + size > n_features:
            raise ValueError(f"cat_vars: the group {start}:{start + size} runs past the {n_features} features.")
        if groups and start < groups[-1][1]:
            raise ValueError(f"cat_vars: the group starting at column {start} overlaps the previous group.")
        groups.append((start, start + size))
    return tuple(groups)


def freeze(mutable: np.ndarray, columns: Sequence[int], groups: Sequence[Tuple[int, int]]) -> np.ndarray:
    """A copy of the 0/1 mask ``mutable`` with ``columns`` set to 0; a one-hot group with any frozen column
    is frozen as a whole (a category changes entirely or not at all)."""
    out = np.array(mutable, dtype=np.float32, copy=True)
    out[list(columns)] = 0.0
    for start, stop in groups:
        out[start:stop] = out[start:stop].min()
    return out


def check_onehot(x: np.ndarray, groups: Sequence[Tuple[int, int]], what: str) -> None:
    """Raise a ValueError if a row's one-hot group is not exactly one 1 and zeros (the first such group and row
    named)."""
    if not groups:
        return
    columns, starts = _group_columns(tuple((int(start), int(stop)) for start, stop in groups))
    block = x[:, columns]  # every group at once: the common case, all valid, in a few passes
    if np.all((block == 0) | (block == 1)) and np.all(np.add.reduceat(block, starts, axis=1) == 1):
        return
    for start, stop in groups:
        block = x[:, start:stop]
        valid = np.all((block == 0) | (block == 1), axis=1) & (block.sum(axis=1) == 1)
        if not np.all(valid):
            row = int(np.flatnonzero(~valid)[0])
            raise ValueError(f"{what}: row {row} has an invalid one-hot encoding in columns {start}:{stop} "
                             f"({block[row].tolist()}); each categorical group must hold exactly one 1.")


@functools.lru_cache(maxsize=64)
def _group_columns(groups: Tuple[Tuple[int, int], ...]) -> Tuple[np.ndarray, np.ndarray]:
    """The columns of the one-hot ``groups``, in order, and where each group starts among them."""
    columns = np.concatenate([np.arange(start, stop) for start, stop in groups])
    sizes = np.array([stop - start for start, stop in groups])
    return columns, np.cumsum(sizes) - sizes


def build_feature_space(
    x: np.ndarray,
    *,
    channel_index: Optional[np.ndarray],
    feature_shape: Tuple[int, ...],
    feature_range: Optional[Tuple[Any, Any]],
    immutable: Sequence[int],
    monotone: Mapping[int, int],
    groups: Tuple[Tuple[int, int], ...],
    grids: Mapping[int, np.ndarray],
    min_change: float = 0.0,
    category_costs: Tuple[float, ...] = (),
) -> FeatureSpace:
    """Statistics of the fit data combined with the constraints.

    Parameters
    ----------
    x
        Fit data, flattened to ``(N, n_features)``, float32.
    channel_index
        For images, the channel of each flattened feature: statistics are then shared by all
        pixels of a channel (a per-pixel spread would freeze rarely used pixels). None for
        feature vectors, which get per-feature statistics.
    feature_shape
        Shape of one instance.
    feature_range
        ``(lower, upper)`` as scalars or arrays broadcastable to ``feature_shape``; None takes the
        range of the fit data (per feature, or per channel for images).
    immutable
        Column indices that never change.
    monotone
        Column index -> +1 (only increase) or -1 (only decrease).
    groups
        One-hot groups as column ranges.
    grids
        Column index -> allowed values of an ordinal feature.
    min_change
        Smallest change kept, in units of spread; smaller ones are dropped (exact sparsity).
    category_costs
        Cost of switching each group's category, in the order of ``groups`` (empty: 1 for every group).

    Returns
    -------
    The feature space.
    """
    n_features = x.shape[1]
    center, spread = x.mean(axis=0), x.std(axis=0)
    data_lower, data_upper = x.min(axis=0), x.max(axis=0)
    if channel_index is not None:
        for c in np.unique(channel_index):
            cols = channel_index == c
            block = x[:, cols]
            center[cols], spread[cols] = block.mean(), block.std()
            data_lower[cols], data_upper[cols] = block.min(), block.max()
    spread = np.where(spread > 0, spread, 1.0)

    if feature_range is None:
        lower, upper = data_lower, data_upper
    else:
        lower, upper = (_broadcast_bound(b, feature_shape, name) for b, name in zip(feature_range, ("lower", "upper")))
        if np.any(lower > upper):
            j = int(np.flatnonzero(lower > upper)[0])
            raise ValueError(f"feature_range: the lower bound {lower[j]} exceeds the upper bound {upper[j]} "
                             f"for feature {j}.")

    mutable = freeze(np.ones(n_features, dtype=np.float32), immutable, groups)
    increase = np.zeros(n_features, dtype=np.float32)
    decrease = np.zeros(n_features, dtype=np.float32)
    grouped = {j for s, e in groups for j in range(s, e)}
    for j, direction in monotone.items():
        if j in grouped:
            raise ValueError(f"monotone: feature {j} belongs to a one-hot group; categories have no direction.")
        (increase if direction > 0 else decrease)[j] = 1.0
    for j in grids:
        if j in grouped:
            raise ValueError(f"feature {j} cannot be both ordinal and part of a one-hot group.")

    f32 = np.float32
    return FeatureSpace(
        center=center.astype(f32), spread=spread.astype(f32),
        lower=lower.astype(f32), upper=upper.astype(f32),
        mutable=mutable, increase=increase, decrease=decrease, groups=groups,
        grids=tuple((j, np.unique(np.asarray(g, dtype=f32))) for j, g in sorted(grids.items())),
        min_change=float(min_change), category_costs=tuple(category_costs),
    )


def _broadcast_bound(bound: Any, feature_shape: Tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(bound, dtype=np.float64)
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise ValueError(f"feature_range: the {name} bound must hold finite numbers.")
    squeezed = arr.reshape(arr.shape[1:]) if arr.ndim == len(feature_shape) + 1 and arr.shape[0] == 1 else arr
    try:
        return np.broadcast_to(squeezed, feature_shape).reshape(-1).astype(np.float64)
    except ValueError:
        raise ValueError(f"feature_range: the {name} bound of shape {arr.shape} does not broadcast to the "
                         f"instance shape {feature_shape}.") from None


def parse_monotone(monotone: Optional[MonotoneSpec], n_features: int,
                   feature_names: Optional[Sequence[str]], groups: Sequence[Tuple[int, int]] = ()) -> Dict[int, int]:
    """Column index -> +1 / -1 from the user's ``monotone`` mapping."""
    if not monotone:
        return {}
    out = {}
    for key, direction in monotone.items():
        column = resolve_feature(key, n_features, feature_names, "monotone", groups)
        norm = direction.lower() if isinstance(direction, str) else direction
        if isinstance(norm, bool) or norm not in _DIRECTIONS:
            raise ValueError(f"monotone: direction {direction!r} for feature {key!r} is not one of "
                             f"'increasing', 'decreasing', +1, -1.")
        out[column] = _DIRECTIONS[norm]
    return out


def parse_ordinal(ordinal: Any, n_features: int, feature_names: Optional[Sequence[str]],
                  groups: Sequence[Tuple[int, int]] = ()) -> Dict[int, Optional[np.ndarray]]:
    """Column index -> grid (None: the values seen in the fit data) from the user's ``ordinal_features``."""
    if ordinal is None:
        return {}
    if isinstance(ordinal, Mapping):
        out: Dict[int, Optional[np.ndarray]] = {}
        for key, grid in ordinal.items():
            column = resolve_feature(key, n_features, feature_names, "ordinal_features", groups)
            values = np.asarray(grid, dtype=np.float64) if grid is not None else None
            if values is not None and (values.ndim != 1 or values.size < 2 or not np.all(np.isfinite(values))):
                raise ValueError(f"ordinal_features: the grid of feature {key!r} must be a list of at least two "
                                 f"finite numbers.")
            out[column] = None if values is None else values.astype(np.float32)
        return out
    if isinstance(ordinal, (str, int, np.integer)):
        raise ValueError("ordinal_features must be a list of features or a {feature: grid} mapping.")
    return {resolve_feature(key, n_features, feature_names, "ordinal_features", groups): None for key in ordinal}


@dataclass(frozen=True)
class UserConstraints:
    """The constraint parameters of an explainer, resolved to column indices.

    Attributes
    ----------
    groups
        One-hot groups as ``(start, stop)`` column ranges (from ``cat_vars`` with ``ohe=True``).
    immutable
        Columns that never change.
    monotone
        Column -> +1 (may only increase) or -1 (may only decrease).
    grids
        Column -> allowed values: integer codes of a categorical column (``ohe=False``), or an ordinal
        feature's grid (None: the values seen in the fit data).
    codes
        The categorical columns of integer codes (``ohe=False``), whose fit data must lie on their grid.
    category_costs
        Cost of switching each group's category, in the order of ``groups`` (empty: 1 for every group).
    """

    groups: Tuple[Tuple[int, int], ...]
    immutable: List[int]
    monotone: Dict[int, int]
    grids: Dict[int, Optional[np.ndarray]]
    codes: Tuple[int, ...]
    category_costs: Tuple[float, ...] = ()

    def fit_grids(self, x: np.ndarray) -> Dict[int, np.ndarray]:
        """Every grid, with the fit data's values for the ordinal features given without one.

        Parameters
        ----------
        x
            The fit data, flattened to ``(N, n_features)``.

        Returns
        -------
        grids
            Column -> allowed values.

        Raises
        ------
        ValueError
            When a categorical column of codes holds a value that is not one of its codes.
        """
        grids = {j: (np.unique(x[:, j]) if grid is None else grid) for j, grid in self.grids.items()}
        for j in self.codes:
            if not np.all(np.isin(x[:, j], grids[j])):
                raise ValueError(f"X: column {j} is declared categorical (ohe=False) with codes "
                                 f"0..{grids[j].size - 1} but holds other values.")
        return grids


def parse_constraints(n_features: int, feature_names: Optional[Sequence[str]], cat_vars: Mapping[int, int],
                      ohe: bool, immutable_features: Sequence[FeatureKey], monotone: Optional[MonotoneSpec],
                      ordinal_features: Any, category_cost: Any = 1.0) -> UserConstraints:
    """Resolve an explainer's constraint parameters to column indices (see ``CounteRGAN``'s parameters).

    Parameters
    ----------
    n_features
        Number of (flat) features.
    feature_names
        Name of every column, or None.
    cat_vars
        alibi's ``{first_column: n_categories}``.
    ohe
        Whether ``cat_vars`` are one-hot groups (else single columns of integer codes).
    immutable_features, monotone, ordinal_features, category_cost
        As the explainer takes them (``category_cost`` checked: a positive number, or a mapping to them).

    Returns
    -------
    constraints
        The columns of each constraint.

    Raises
    ------
    ValueError
        For a feature that does not exist, overlapping or out-of-range groups, or a bad direction or grid.
    """
    groups = onehot_groups(cat_vars, ohe, n_features)
    immutable = resolve_features(list(immutable_features), n_features, feature_names, "immutable_features", groups)
    directions = parse_monotone(monotone, n_features, feature_names, groups)
    grids: Dict[int, Optional[np.ndarray]] = {} if ohe else {
        j: np.arange(n, dtype=np.float32) for j, n in cat_vars.items()}
    for j in grids:
        if not 0 <= j < n_features:
            raise ValueError(f"cat_vars: column {j} is out of range for {n_features} features.")
    codes = tuple(grids)
    grids.update(parse_ordinal(ordinal_features, n_features, feature_names, groups))
    return UserConstraints(groups=groups, immutable=immutable, monotone=directions, grids=grids, codes=codes,
                           category_costs=parse_category_costs(category_cost, n_features, feature_names, groups))


def parse_category_costs(category_cost: Any, n_features: int, feature_names: Optional[Sequence[str]],
                         groups: Sequence[Tuple[int, int]]) -> Tuple[float, ...]:
    """The cost of switching each one-hot group's category, in the order of ``groups``, from the user's
    ``category_cost`` (a number for every group, or ``{variable: cost}`` with 1 for the others); empty when
    every cost is 1."""
    if not groups and (isinstance(category_cost, Mapping) or float(category_cost) != 1.0):
        raise ValueError(f"category_cost={category_cost!r} needs one-hot categorical variables (cat_vars with "
                         f"ohe=True), and there are none; a numeric or integer-coded feature costs its change in "
                         f"standard deviations.")
    if not isinstance(category_cost, Mapping):
        costs = [float(category_cost)] * len(groups)
    else:
        costs = [1.0] * len(groups)
        for key, cost in category_cost.items():
            columns = resolve_features([key], n_features, feature_names, "category_cost", groups)
            group = [i for i, (start, stop) in enumerate(groups) if start <= columns[0] < stop]
            if not group:
                raise ValueError(f"category_cost: {key!r} is not a one-hot categorical variable (cat_vars with "
                                 f"ohe=True); a numeric feature costs its change in standard deviations.")
            costs[group[0]] = float(cost)
    return () if all(c == 1.0 for c in costs) else tuple(costs)
