"""Feature statistics, actionability constraints and the projection that enforces them.

Everything here is framework-free. :class:`FeatureSpace` holds, per (flattened) feature, the
statistics learned from the fit data and the constraints a user asked for. :func:`project`
turns the generator's raw output into a counterfactual that satisfies every constraint; it is
written against :class:`~alibi_countergan.ops.Ops`, so the same code runs differentiably inside
a backend's training step and exactly, in numpy, on the counterfactuals that ``explain`` returns.

Order of the projection (each step keeps what the previous ones guaranteed):

1. scale: the generator works in units of each feature's spread, ``delta = u * spread``;
2. mask: features that may not change (immutable, or frozen for one request) get ``delta = 0``;
3. monotone features keep only the allowed sign of ``delta``;
4. range: ``x + delta`` is clipped to the feature range, widened to include ``x`` itself, so a
   feature that starts outside the range is never pushed further out, nor moved against its
   monotone direction by the clip;
5. categorical one-hot groups are replaced by an exact one-hot vector (the argmax of
   ``x_group + u_group``); in training the gradient passes through a softmax
   (straight-through), so the classifier and the discriminator only ever see valid encodings;
6. ordinal features snap to their grid of values, in the allowed direction.
"""

from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from alibi_countergan.ops import Ops, Tensor

FeatureKey = Union[int, str]
"""A feature given by its (flat) column index or by its name in ``feature_names``."""

MonotoneSpec = Mapping[FeatureKey, Union[str, int]]
"""Feature -> ``'increasing'`` (or ``+1``) / ``'decreasing'`` (or ``-1``)."""

_DIRECTIONS = {"increasing": 1, "increase": 1, "+": 1, 1: 1, "decreasing": -1, "decrease": -1, "-": -1, -1: -1}


@dataclass(frozen=True)
class FeatureSpace:
    """Per-feature statistics and constraints, as flat float32 arrays of length ``n_features``.

    Attributes
    ----------
    center
        Centre used to standardise inputs of the networks (mean of the fit data).
    spread
        Unit of the generator's output for each feature (standard deviation of the fit data,
        1 where a feature is constant).
    lower, upper
        Feature range of the counterfactuals.
    mutable
        1 where a feature may change, 0 where it is immutable.
    increase, decrease
        1 where a feature may only increase (resp. decrease), else 0.
    groups
        One-hot groups as ``(start, stop)`` column ranges.
    grids
        Ordinal features: ``(column, sorted grid of allowed values)``.
    """

    center: np.ndarray
    spread: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    mutable: np.ndarray
    increase: np.ndarray
    decrease: np.ndarray
    groups: Tuple[Tuple[int, int], ...] = ()
    grids: Tuple[Tuple[int, np.ndarray], ...] = field(default=())
    min_change: float = 0.0

    @property
    def n_features(self) -> int:
        """Number of (flattened) features."""
        return int(self.center.shape[0])

    def tensors(self, ops: Ops) -> "SpaceTensors":
        """The arrays as constant tensors of a framework, shaped ``(1, n_features)``."""

        def row(a: np.ndarray) -> Tensor:
            return ops.constant(np.asarray(a, dtype=np.float32).reshape(1, -1))

        grouped = np.zeros(self.n_features, dtype=bool)
        for start, stop in self.groups:
            grouped[start:stop] = True
        return SpaceTensors(
            cost_scale=row(np.where(grouped, 0.5, 1.0 / self.spread)),
            numeric=row(1.0 - grouped),
            n_variables=self.n_features - sum(stop - start - 1 for start, stop in self.groups),
            center=row(self.center),
            spread=row(self.spread),
            lower=row(self.lower),
            upper=row(self.upper),
            free=row(1.0 - self.increase - self.decrease),
            increase=row(self.increase),
            decrease=row(self.decrease),
            groups=self.groups,
            grids=tuple((j, ops.constant(g.astype(np.float32))) for j, g in self.grids),
            min_change=self.min_change,
        )

    def to_config(self) -> Dict[str, Any]:
        """A JSON-serialisable description (lists instead of arrays)."""
        return {
            "center": self.center.tolist(),
            "spread": self.spread.tolist(),
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "mutable": self.mutable.tolist(),
            "increase": self.increase.tolist(),
            "decrease": self.decrease.tolist(),
            "groups": [list(g) for g in self.groups],
            "grids": [[j, g.tolist()] for j, g in self.grids],
            "min_change": self.min_change,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "FeatureSpace":
        """Inverse of :meth:`to_config`."""

        def arr(key: str) -> np.ndarray:
            return np.asarray(config[key], dtype=np.float32)

        return cls(
            center=arr("center"),
            spread=arr("spread"),
            lower=arr("lower"),
            upper=arr("upper"),
            mutable=arr("mutable"),
            increase=arr("increase"),
            decrease=arr("decrease"),
            groups=tuple((int(s), int(e)) for s, e in config["groups"]),
            grids=tuple((int(j), np.asarray(g, dtype=np.float32)) for j, g in config["grids"]),
            min_change=float(config["min_change"]),
        )

    def with_mutable(self, mutable: np.ndarray) -> "FeatureSpace":
        """A copy with another immutability mask."""
        return replace(self, mutable=np.asarray(mutable, dtype=np.float32))


@dataclass(frozen=True)
class SpaceTensors:
    """:class:`FeatureSpace` as framework tensors of shape ``(1, n_features)``."""

    center: Tensor
    spread: Tensor
    lower: Tensor
    upper: Tensor
    free: Tensor
    increase: Tensor
    decrease: Tensor
    groups: Tuple[Tuple[int, int], ...]
    grids: Tuple[Tuple[int, Tensor], ...]
    min_change: float = 0.0
    cost_scale: Tensor = None
    """Per column, the weight of ``|cf - x|`` in a counterfactual's cost: ``1 / spread`` for numeric
    columns, 1/2 for one-hot columns (a switched category costs 1, once per variable)."""
    n_variables: int = 0
    """Number of variables: numeric columns, plus one per one-hot group."""
    numeric: Tensor = None
    """1 for the columns outside one-hot groups, else 0."""


def change_cost(ops: Ops, x: Tensor, cf: Tensor, space: SpaceTensors) -> Tensor:
    """Each row's cost of changing ``x`` into ``cf``, averaged over the variables: ``|change| / spread`` per
    numeric feature and 1 per switched category (so a categorical variable counts once, whatever its size)."""
    return ops.sum(ops.abs(cf - x) * space.cost_scale, axis=1) / float(max(1, space.n_variables))


def wasted_residual(ops: Ops, x: Tensor, u: Tensor, mask: Tensor, cf: Tensor, space: SpaceTensors) -> Tensor:
    """Per row, the mean size (in spread units) of the generator's numeric output that has no effect on the
    counterfactual: clipped by the range, masked, of the wrong sign for a monotone feature, or below
    ``min_change``. Penalising it keeps the output bounded without pulling real changes back."""
    waste = ops.abs(u * mask - (cf - x) / space.spread) * space.numeric
    return ops.mean(waste, axis=1)


def standardise(x: Tensor, space: SpaceTensors) -> Tensor:
    """Centre and scale features for the networks' inputs."""
    return (x - space.center) / space.spread


def project(ops: Ops, x: Tensor, u: Tensor, mask: Tensor, space: SpaceTensors, *, hard: bool) -> Tensor:
    """Turn the generator's output into a counterfactual that satisfies every constraint.

    Parameters
    ----------
    ops
        The framework's operations.
    x
        Original instances, shape ``(B, n_features)``, in the user's units.
    u
        Generator output, shape ``(B, n_features)``, in units of each feature's spread (and, for
        one-hot columns, as logits added to the original encoding).
    mask
        1 where a feature may change for that row, 0 where it must stay; shape ``(B, n_features)``.
    space
        Statistics and constraints as tensors.
    hard
        ``False`` in training: one-hot groups and ordinal grids pass gradients straight through.
        ``True`` for outputs: exact values only.

    Returns
    -------
    The counterfactuals, shape ``(B, n_features)``.
    """
    delta = u * space.spread * mask
    if space.min_change > 0:
        kept = delta * ops.positive(ops.abs(u) - space.min_change)
        delta = kept if hard else delta + ops.stop_gradient(kept - delta)
    delta = delta * space.free + space.increase * ops.relu(delta) - space.decrease * ops.relu(-delta)
    cf = x + delta
    cf = ops.minimum(ops.maximum(cf, ops.minimum(space.lower, x)), ops.maximum(space.upper, x))
    for start, stop in space.groups:
        logits = x[:, start:stop] + u[:, start:stop]
        hot = ops.one_hot_argmax(logits)
        if not hard:
            soft = ops.softmax(logits)
            hot = hot + (soft - ops.stop_gradient(soft))
        keep = mask[:, start : start + 1]
        group = keep * hot + (1.0 - keep) * x[:, start:stop]
        cf = ops.concat([cf[:, :start], group, cf[:, stop:]], axis=1)
    for column, grid in space.grids:
        value = cf[:, column : column + 1]
        snapped = _snap(ops, value, x[:, column : column + 1], grid, space, column)
        if not hard:
            snapped = value + ops.stop_gradient(snapped - value)
        keep = mask[:, column : column + 1]
        cf = ops.concat([cf[:, :column], keep * snapped + (1.0 - keep) * x[:, column : column + 1],
                         cf[:, column + 1 :]], axis=1)
    return cf


def _snap(ops: Ops, value: Tensor, original: Tensor, grid: Tensor, space: SpaceTensors, column: int) -> Tensor:
    """Nearest grid value that does not break the feature's monotone direction.

    The nearest grid point is taken first; for a monotone feature the result is then limited to
    the original value's side, which for an ``x`` already on the grid is again a grid value.
    """
    snapped = ops.nearest(value, grid)
    up = space.increase[:, column : column + 1]
    down = space.decrease[:, column : column + 1]
    free = 1.0 - up - down
    return free * snapped + up * ops.maximum(snapped, original) + down * ops.minimum(snapped, original)


# ---------------------------------------------------------------------------------------------
# Building a FeatureSpace from the user's parameters and the fit data
# ---------------------------------------------------------------------------------------------


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
    """Raise a ValueError if a row's one-hot group is not exactly one 1 and zeros."""
    for start, stop in groups:
        block = x[:, start:stop]
        valid = np.all((block == 0) | (block == 1), axis=1) & (block.sum(axis=1) == 1)
        if not np.all(valid):
            row = int(np.flatnonzero(~valid)[0])
            raise ValueError(f"{what}: row {row} has an invalid one-hot encoding in columns {start}:{stop} "
                             f"({block[row].tolist()}); each categorical group must hold exactly one 1.")


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
        min_change=float(min_change),
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
