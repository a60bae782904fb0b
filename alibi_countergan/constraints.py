"""The constraint projection: the core's lowest layer, written once for every framework.

:class:`FeatureSpace` holds, per (flattened) feature, the statistics learned from the fit data and
the constraints a user asked for (:mod:`alibi_countergan.features` builds it from the user's
parameters). It is the one record of the feature space; the other forms derive from it: its
:class:`Variables` (:attr:`FeatureSpace.variables`, each numeric column and each one-hot group) and its
:class:`SpaceTensors` (a framework's tensors, :meth:`FeatureSpace.tensors`, or numpy's in the inputs'
dtype, :meth:`FeatureSpace.tensors_for`). The cost of a change is :func:`column_costs`, summed by the
training loss (:func:`change_cost`) and by the refinement (:meth:`Variables.costs`).

:func:`project` turns the generator's raw output into a counterfactual that satisfies every constraint;
it is written against :class:`~alibi_countergan.ops.Ops`, so the same code runs differentiably inside a
backend's training step and exactly, in numpy, on the counterfactuals that ``explain`` returns.
The count of broken constraints, for judging counterfactuals, is :func:`alibi_countergan.metrics.violations`.

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

from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np

from alibi_countergan.ops import NUMPY_OPS, Ops, Tensor

RESTRICTED_CACHE_SIZE = 1024
"""Restrictions of a space's tensors to a set of columns kept by :meth:`FeatureSpace.tensors_on` (emptied when
full)."""


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
    min_change
        Smallest change kept, in units of spread.
    category_costs
        Cost of switching each one-hot group's category, in the order of ``groups`` (empty: 1 for every group),
        in the units of a numeric change of one spread.
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
    category_costs: Tuple[float, ...] = ()

    @property
    def n_features(self) -> int:
        """Number of (flattened) features."""
        return int(self.center.shape[0])

    @cached_property
    def variables(self) -> "Variables":
        """The variables of the space, each numeric column and each one-hot group as a whole (computed once; the
        number of variables and the one-hot columns of :meth:`tensors` derive from them)."""
        return Variables.from_groups(self.n_features, self.groups)

    def tensors(self, ops: Ops) -> "SpaceTensors":
        """The arrays as constant tensors of a framework, shaped ``(1, n_features)``."""

        def row(a: np.ndarray) -> Tensor:
            return ops.constant(np.asarray(a, dtype=np.float32).reshape(1, -1))

        cost_scale = 1.0 / self.spread
        for (start, stop), cost in zip(self.groups, self.group_costs):
            cost_scale[start:stop] = cost / 2.0  # a switch moves two columns by 1
        return SpaceTensors(
            cost_scale=row(cost_scale),
            numeric=row(1.0 - self.variables.grouped),
            n_variables=self.variables.n,
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
            monotone=bool(np.any(self.increase) or np.any(self.decrease)),
        )

    def network_inputs(self, x: np.ndarray) -> np.ndarray:
        """Flat rows ``x`` standardised (:func:`standardise`, computed with this space's float64 statistics) and
        cast to float32, as the generator and discriminator take them."""
        return np.asarray(standardise(x, self), dtype=np.float32)

    def tensors_for(self, dtype: Any) -> "SpaceTensors":
        """The space as numpy tensors for inputs of ``dtype``: float64 for float64 inputs (so that immutable
        features stay bit-exact), float32 otherwise; each built once, from :meth:`tensors`."""
        return self._numpy_tensors[1 if dtype == np.float64 else 0]

    @cached_property
    def _numpy_tensors(self) -> Tuple["SpaceTensors", "SpaceTensors"]:
        tensors = self.tensors(NUMPY_OPS)
        return tensors, tensors.cast(np.float64)

    def tensors_on(self, dtype: Any, columns: Tuple[int, ...]) -> "SpaceTensors":
        """:meth:`tensors_for` restricted to ``columns`` (whole variables, ascending; see
        :meth:`SpaceTensors.restricted`), each built once: a served explainer's proposals change the same few
        variables again and again."""
        key = (1 if dtype == np.float64 else 0, columns)
        cache = self._restricted_tensors
        found = cache.get(key)
        if found is None:
            if len(cache) >= RESTRICTED_CACHE_SIZE:
                cache.clear()
            found = cache[key] = self.tensors_for(dtype).restricted(columns)
        return found

    @cached_property
    def _restricted_tensors(self) -> Dict[Tuple[int, Tuple[int, ...]], "SpaceTensors"]:
        return {}

    @property
    def group_costs(self) -> Tuple[float, ...]:
        """Cost of switching each one-hot group's category (``category_costs``, or 1 for every group)."""
        return self.category_costs if self.category_costs else (1.0,) * len(self.groups)

    def to_config(self) -> Dict[str, Any]:
        """The fields as a dict of arrays, tuples and numbers (:mod:`alibi_countergan.jsonvalue` writes it as JSON)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "FeatureSpace":
        """Inverse of :meth:`to_config`; also takes lists for the arrays (as saves of release 0.1.0 hold them)."""

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
            category_costs=tuple(float(c) for c in config.get("category_costs", ())),
        )


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
    columns, half the group's category cost for one-hot columns (a switch moves two columns, so it costs the
    category cost once per variable; 1 by default)."""
    n_variables: int = 0
    """Number of variables: numeric columns, plus one per one-hot group (:attr:`Variables.n`)."""
    numeric: Tensor = None
    """1 for the columns outside one-hot groups, else 0 (the complement of :attr:`Variables.grouped`)."""
    monotone: bool = True
    """Whether any column is monotone (:func:`project` skips the directions' arithmetic otherwise)."""

    def restricted(self, columns: Sequence[int]) -> "SpaceTensors":
        """The tensors of the ``columns`` alone (numpy tensors only), for rows that change nothing else:
        :func:`project` of those columns gives the same values as of whole rows.

        Raises
        ------
        ValueError
            When ``columns`` are not ascending or hold part of a one-hot group.
        """
        cols = np.asarray(columns, dtype=np.int64)
        if cols.size > 1 and np.any(np.diff(cols) <= 0):
            raise ValueError(f"The columns of restricted tensors must be ascending and distinct; got {list(columns)}.")
        position = {int(c): i for i, c in enumerate(cols)}
        groups = []
        for start, stop in self.groups:
            inside = [c in position for c in range(start, stop)]
            if any(inside) and not all(inside):
                raise ValueError(f"The columns {list(columns)} hold part of the one-hot group of columns {start} to "
                                 f"{stop - 1}; restricted tensors take whole variables.")
            if all(inside):
                groups.append((position[start], position[start] + stop - start))
        changes: Dict[str, Any] = {f.name: getattr(self, f.name)[:, cols] for f in fields(self)
                                   if isinstance(getattr(self, f.name), np.ndarray)}
        grids = tuple((position[j], g) for j, g in self.grids if j in position)
        n_variables = int(cols.size) - sum(stop - start - 1 for start, stop in groups)
        monotone = self.monotone and bool(np.any(changes["increase"]) or np.any(changes["decrease"]))
        return replace(self, groups=tuple(groups), grids=grids, n_variables=n_variables, monotone=monotone, **changes)

    def cast(self, dtype: Any) -> "SpaceTensors":
        """A copy with every numpy array (the grids' included) converted to ``dtype``; numpy tensors only."""
        changes: Dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                changes[f.name] = value.astype(dtype)
        changes["grids"] = tuple((j, np.asarray(g, dtype=dtype)) for j, g in self.grids)
        return replace(self, **changes)


@dataclass(frozen=True)
class Variables:
    """The variables a counterfactual changes: each numeric column, and each one-hot group as a whole.

    Attributes
    ----------
    starts
        First column of each variable (variables are contiguous and in column order).
    of_column
        Variable index of each column.
    is_group
        Whether each variable is a one-hot group.
    """

    starts: np.ndarray
    of_column: np.ndarray
    is_group: np.ndarray

    @classmethod
    def from_groups(cls, n_features: int, groups: Sequence[Tuple[int, int]]) -> "Variables":
        """The variables of ``n_features`` columns with the one-hot ``groups`` (``(start, stop)`` column ranges)."""
        group_of = {start: stop for start, stop in groups}
        starts: List[int] = []
        is_group: List[bool] = []
        column = 0
        while column < n_features:
            starts.append(column)
            is_group.append(column in group_of)
            column = group_of.get(column, column + 1)
        start_arr = np.asarray(starts, dtype=np.int64)
        of_column = np.repeat(np.arange(len(starts)), np.diff(np.append(start_arr, n_features)))
        return cls(starts=start_arr, of_column=of_column, is_group=np.asarray(is_group, dtype=bool))

    @property
    def n(self) -> int:
        """Number of variables."""
        return int(self.starts.size)

    @property
    def grouped(self) -> np.ndarray:
        """Per column, whether it belongs to a one-hot group."""
        return self.is_group[self.of_column]

    def costs(self, x: np.ndarray, cf: np.ndarray, tensors: "SpaceTensors") -> np.ndarray:
        """Cost of each variable's change, ``(B, n)``: :func:`column_costs` summed over its columns, so
        ``|change| / spread`` for a numeric feature and the category cost for a switched category.

        Parameters
        ----------
        x, cf
            Originals and counterfactuals, flat ``(B, n_features)``.
        tensors
            The feature space as numpy tensors (of the dtype of ``x``).
        """
        size = column_costs(NUMPY_OPS, x, cf, tensors)
        return np.add.reduceat(size, self.starts, axis=1) if self.n < x.shape[1] else size


def column_costs(ops: Ops, x: Tensor, cf: Tensor, space: SpaceTensors) -> Tensor:
    """The cost of changing ``x`` into ``cf``, per column: ``|cf - x| * cost_scale``, shape ``(B, n_features)``.

    The one definition of a change's cost: a numeric column costs its change in units of spread, and the
    columns of a switched one-hot group add up to the group's category cost (1 by default).
    :func:`change_cost` (training) and :meth:`Variables.costs` (the refinement) are sums of it.
    """
    return ops.abs(cf - x) * space.cost_scale


def change_cost(ops: Ops, x: Tensor, cf: Tensor, space: SpaceTensors) -> Tensor:
    """Each row's cost of changing ``x`` into ``cf`` (:func:`column_costs` summed), averaged over the variables,
    so a categorical variable counts once, whatever its size."""
    return ops.sum(column_costs(ops, x, cf, space), axis=1) / float(max(1, space.n_variables))


def wasted_residual(ops: Ops, x: Tensor, u: Tensor, mask: Tensor, cf: Tensor, space: SpaceTensors) -> Tensor:
    """Per row, the mean size (in spread units) of the generator's numeric output that has no effect on the
    counterfactual: clipped by the range, masked, of the wrong sign for a monotone feature, or below
    ``min_change``. Penalising it keeps the output bounded without pulling real changes back."""
    waste = ops.abs(u * mask - (cf - x) / space.spread) * space.numeric
    return ops.mean(waste, axis=1)


def standardise(x: Tensor, space: Union[SpaceTensors, FeatureSpace]) -> Tensor:
    """Centre and scale features for the networks' inputs: ``(x - center) / spread``, on any tensors (only the
    space's ``center`` and ``spread`` are read)."""
    return (x - space.center) / space.spread


def residual_towards(x: np.ndarray, cf: np.ndarray, space: SpaceTensors, scale: np.ndarray) -> np.ndarray:
    """The generator output that :func:`project` (with a mask of ones) turns into ``cf``, its numeric changes
    scaled by ``scale``: numpy, for the refinement's candidates.

    Numeric columns: ``scale * (cf - x) / spread`` (the projection multiplies by the spread again). One-hot
    columns: the logits added to ``x``, ``2 * (cf - x)``, so that ``x + u = 2 cf - x`` is largest at ``cf``'s
    category (2 against at most 0 elsewhere; ``x``'s own category, 1, where ``cf`` keeps it).

    Parameters
    ----------
    x, cf
        Originals and counterfactuals, flat ``(B, n_features)``.
    space
        The feature space as numpy tensors.
    scale
        The factor of each row's numeric changes, ``(B,)``.
    """
    delta = cf - x
    numeric = scale.reshape(-1, 1) * delta / space.spread
    return np.where(space.numeric > 0, numeric, 2.0 * delta) if space.groups else numeric


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
    if space.monotone:
        delta = delta * space.free + space.increase * ops.relu(delta) - space.decrease * ops.relu(-delta)
    cf = x + delta
    cf = ops.minimum(ops.maximum(cf, ops.minimum(space.lower, x)), ops.maximum(space.upper, x))
    blocks: Dict[int, Tuple[int, Tensor]] = {}  # first column -> (end, the columns' values): one-hot groups, grids
    for start, stop in space.groups:
        logits = x[:, start:stop] + u[:, start:stop]
        hot = ops.one_hot_argmax(logits)
        if not hard:
            soft = ops.softmax(logits)
            hot = hot + (soft - ops.stop_gradient(soft))
        keep = mask[:, start : start + 1]
        blocks[start] = (stop, keep * hot + (1.0 - keep) * x[:, start:stop])
    for column, grid in space.grids:  # numeric columns, none in a one-hot group
        value = cf[:, column : column + 1]
        snapped = _snap(ops, value, x[:, column : column + 1], grid, space, column)
        if not hard:
            snapped = value + ops.stop_gradient(snapped - value)
        keep = mask[:, column : column + 1]
        blocks[column] = (column + 1, keep * snapped + (1.0 - keep) * x[:, column : column + 1])
    return _with_blocks(ops, cf, blocks, int(space.spread.shape[-1]))


def _with_blocks(ops: Ops, cf: Tensor, blocks: Dict[int, Tuple[int, Tensor]], n_features: int) -> Tensor:
    """``cf`` (``n_features`` columns) with the column ranges of ``blocks`` (first column -> (end, values))
    replaced, in one concatenation (one copy of the batch, however many groups and grids there are)."""
    if not blocks:
        return cf
    parts, column = [], 0
    for start in sorted(blocks):
        stop, values = blocks[start]
        if start > column:
            parts.append(cf[:, column:start])
        parts.append(values)
        column = stop
    if column < n_features:
        parts.append(cf[:, column:])
    return ops.concat(parts, axis=1)


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
