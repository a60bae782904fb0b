"""Explain-time refinement: repair, then make each counterfactual minimal, with predictor calls only.

The generator proposes a counterfactual in one forward pass; it is trained to be valid and small on
average, not for each row. :class:`Refiner` post-processes a whole batch of proposals with a handful of
batched predictor calls (no gradients, so black-box predictors work the same).

**One call for a small batch of tabular rows.** :meth:`Refiner.search` builds, before any predictor call, the
candidates the stages below would try: for a proposal that changes 1 to :data:`SEARCH_VARIABLES` variables, each
non-empty subset of its changes kept, at each of :data:`SEARCH_STEPS` scales of the residual (a subset of categories
only at scale 1, which scales do not move). The originals, the proposals and those candidates are scored in one call
and, per row, the cheapest that reaches the target wins. The alternatives of :mod:`alibi_countergan.diverse` also
try the repair stage's :data:`GROW_SCALES`; a first counterfactual never stops at a grown candidate (that grid is too
coarse), so its search does not score them. That is a joint search over subsets and scales: it holds every
candidate of the drop stage, so it is never costlier than that stage, and it finds what the drop-then-shrink
sequence cannot (a larger subset shrunk further). It scores more rows than the stages
(hundreds to a few thousand per row instead of about a hundred), which is cheap where a call's fixed cost
dominates (one row, a few rows, a served classifier) and not for a large batch: a batch whose candidates would
hold more than :data:`SEARCH_CALL_VALUES` values takes the stages instead, with a few calls of fewer rows. A row
that no candidate brings to the target gets a second call (:meth:`Refiner.grow`): every subset grown past
the proposal, on the same grid up to the largest of :data:`GROW_SCALES`, scored with the repair stage's first
round (:meth:`Refiner.repair_candidates`), so that the rows it leaves over, and those whose proposal changes more
variables, go on to the stages with that round's call made (a grown candidate is kept only where no candidate of
that round that reaches the target costs less: the stages would start from such a one).

**The stages** (large batches, images, and the rows the search leaves over):

1. **Repair** the rows whose proposal misses its target: the generator is applied again to its own
   output, and the residual is grown (scaled by 1.5, 2 and 3); the cheapest candidate that reaches the
   target is kept (one predictor call, for the failing rows only). Rows that still miss it get a few
   rounds of a coordinate search: each mutable variable is moved alone to each end of its range (or to
   each other category) and the move that brings the row closest to its target is kept (one call per
   round; tabular data only, up to ``max_exact_variables`` mutable variables).
2. **Drop** the changed variables (a numeric feature, or a one-hot categorical variable as a whole) that
   the target does not need. A row that changes up to :data:`EXHAUSTIVE_DROP_VARIABLES` (5) variables has
   every subset of them reverted, in one call, and the cheapest candidate that still reaches the target is
   kept: the best choice of variables to keep, not an approximation. A row that changes more has every
   single-variable reversal scored in that call; its variables are then reverted cumulatively, two or
   more, least needed first (most costly first among equals), in a second call.
3. **Shrink** what is left towards the original: the smallest scale ``s`` of the residual in ``(0, 1]``
   that keeps the target, to 1/125: one call with every scale for rows of up to 16 features in batches of
   up to 33 rows, otherwise a bisection of three calls of 4 scales (:data:`SHRINK_ROW_VALUES`,
   :data:`SHRINK_CALL_VALUES`); both search the same grid.

Rows with more variables than ``max_exact_variables`` (32; images) skip the drop stage: reverting a pixel
at a time is out of reach, and reverting the smallest changes in bulk breaks strokes (on MNIST it made
the counterfactuals markedly less realistic than the generator's). Their shrinking search interpolates
instead: the residual is scored at :data:`BRACKET_SCALES` (with the proposals, where the caller can), and the
scale where the target's log-odds cross the criterion is estimated linearly between the largest scale known to
miss (the original, whose probabilities are known, at worst) and the next, which reaches it, then scored: one call
of one candidate per row. A refined image whose proposal reaches its target thus costs two predictor calls.

Every candidate is built by :func:`~alibi_countergan.constraints.project`, the projection that enforces
the constraints on the generator's output, so one-hot groups, ordinal grids, monotone directions, feature
ranges and immutable or frozen features hold at every step. Only candidates that were evaluated are
returned, with the probabilities the predictor gave them.

"Reaching the target" is :class:`Criterion`: by default the target class must beat every other class by
:data:`BOUNDARY_MARGIN` in probability (just past the decision boundary); a ``target_proba`` asks for that
probability instead, as Wachter et al.'s ``target_proba`` does.
"""

import functools
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from alibi_countergan.constraints import FeatureSpace, SpaceTensors, project, residual_towards
from alibi_countergan.ops import NUMPY_OPS

BOUNDARY_MARGIN = 0.05
"""Default margin: the target's probability must exceed every other class's by this much."""

SHRINK_ROW_VALUES = 2048
"""A row whose every scale fits in this many values (scales times features) is shrunk in one call with every
scale (a call's fixed cost dominates for a narrow tabular row); wider rows take three calls of 4 scales, the
same grid of 1/125 (images are shrunk by interpolation instead, see :data:`BRACKET_SCALES`)."""

SHRINK_CALL_VALUES = 2 ** 16
"""Batches whose one-call search would hold more values than this take three calls of 4 scales per row."""

EXHAUSTIVE_DROP_VARIABLES = 5
"""Rows that change up to this many variables have every subset of them reverted in the drop stage (at most 30
candidates per row, one call): the cheapest that reaches the target is exact. Rows that change more are
reverted greedily (two calls)."""

BRACKET_SCALES = (0.25, 0.5, 0.75)
"""Scales of the residual at which a wide row's (an image's) counterfactual is scored before its shrink, in the
proposals' call where the caller can: they narrow the interval in which the shrink interpolates to a quarter.
Measured on 300 MNIST proposals per mode (white-box, black-box; 300 training iterations on the repository's
subset), these three and one interpolated scale reach a mean L1 of 60.2 and 57.9, against 68.1 and 58.9 for the
three rounds of interpolation from the whole interval that they replace (which scored one row per image less, in
one call more), 60.9 and 59.1 for two bracket scales (1/3, 2/3) and 68.5 and 62.1 for one (0.5). On scikit-learn's
8x8 digits they land 3.5% to 3.9% above the grid search of narrow rows (two scales: 5.0% to 5.8%)."""

SEARCH_STEPS = 48
"""Scales of the residual per subset of changed variables in the one-call search (:meth:`Refiner.search`): the
residual times ``1 / SEARCH_STEPS``, ``2 / SEARCH_STEPS``, ..., 1."""

SEARCH_VARIABLES = 8
"""Proposals that change up to this many variables have every non-empty subset of their changes searched (at most
255, each at every scale: about 13,000 candidates for 8 numeric changes, which fits one call for a row of up to
20 features with an explicit target, up to 10 for 'other' with two classes); those that change more go through the
stages (greedy drop)."""

SEARCH_CALL_VALUES = 2 ** 18
"""The one-call search runs when the values it would score (originals, proposals and candidates, times features)
fit in this many: a single tabular row of up to 32 variables always does, a batch of a few dozen narrow rows
does. Larger batches take the stages, whose calls hold a few times the batch instead of hundreds of times."""

SEARCH_OTHER_CLASSES = 3
"""For the target 'other' with up to this many classes, the search takes every class's proposal (the original's
class is known only after the call); with more, the stages."""

GROW_SCALES = (1.5, 2.0, 3.0)
"""Scales of the residual tried when a counterfactual misses its target."""

PredictFn = Callable[[np.ndarray], np.ndarray]
"""Flat rows ``(n, n_features)`` -> class probabilities ``(n, n_classes)``."""

RegenerateFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``(x, targets, mask) -> counterfactuals``: the generator's projected output for flat rows."""


@dataclass(frozen=True)
class OneRowPlan:
    """How a single row's search candidates are built (:meth:`Refiner._build_one`), read-only.

    Attributes
    ----------
    distinct
        The distinct scales of the residual, ascending.
    level_of
        Each candidate's index among ``distinct``.
    columns
        The columns of the proposal's changed variables, ascending.
    gather
        ``(N, n_features)``: where each candidate's values are read from the row followed by the moved values of
        ``columns`` at each distinct scale (``(len(distinct), len(columns))``, raveled): the moved value where the
        candidate keeps the column's variable, the original's elsewhere.
    """

    distinct: np.ndarray
    level_of: np.ndarray
    columns: np.ndarray
    gather: np.ndarray


def one_row_plan(keep: np.ndarray, scale: np.ndarray, columns: Sequence[int], column_variables: Sequence[int],
                 n_features: int) -> OneRowPlan:
    """The :class:`OneRowPlan` of candidates that keep the variables ``keep`` ``(N, n_variables)`` at ``scale``
    ``(N,)``, where the moved ``columns`` belong to the variables ``column_variables``."""
    distinct, level_of = np.unique(scale, return_inverse=True)
    cols, owners = np.array(columns, dtype=np.intp), np.array(column_variables, dtype=np.intp)
    gather = np.tile(np.arange(n_features), (len(scale), 1))
    moved = n_features + level_of[:, None] * len(cols) + np.arange(len(cols))[None, :]
    gather[:, cols] = np.where(keep[:, owners], moved, cols[None, :])
    for array in (distinct, level_of, cols, gather):
        array.flags.writeable = False
    return OneRowPlan(distinct, level_of, cols, gather)


Plan = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Optional[List[Tuple[int, OneRowPlan]]]]
""":meth:`Refiner._plan`'s candidates: ``(owner, scale, keep, subset, each)``."""


@dataclass(frozen=True)
class Criterion:
    """When a counterfactual reaches its target class.

    Attributes
    ----------
    target_proba
        None: the target class's probability exceeds every other class's by :data:`BOUNDARY_MARGIN`.
        A number in ``(0, 1]``: the target class is the predicted class and its probability is at
        least ``target_proba``.
    """

    target_proba: Optional[float] = None

    def slack(self, proba: np.ndarray, targets: np.ndarray | int) -> np.ndarray:
        """How far each row is past the criterion (>= 0: reached); ``targets``: one per row, or one for all."""
        rows: slice | np.ndarray = slice(None) if np.ndim(targets) == 0 else np.arange(len(proba))
        p_target = proba[rows, targets]
        if proba.shape[1] == 2:  # the common case, without a copy: the runner-up is the other class
            runner_up = proba[rows, 1 - targets]
        elif proba.shape[1] > 2:
            others = proba.copy()
            others[rows, targets] = -np.inf
            runner_up = others.max(axis=1)
        else:
            runner_up = np.zeros(len(proba))
        if self.target_proba is None:
            return p_target - runner_up - BOUNDARY_MARGIN
        return np.minimum(p_target - self.target_proba, p_target - runner_up - 1e-12)

    @property
    def log_odds_threshold(self) -> float:
        """The target's log-odds at the criterion: those of ``target_proba``, or of ``0.5 + margin / 2`` (exact for
        two classes, where the criterion is ``p_target >= 0.5 + margin / 2``; a guide for more)."""
        p = 0.5 + BOUNDARY_MARGIN / 2 if self.target_proba is None else self.target_proba
        p = min(max(p, 1e-7), 1.0 - 1e-7)
        return float(np.log(p) - np.log1p(-p))

    def met(self, proba: np.ndarray, targets: np.ndarray | int) -> np.ndarray:
        """Boolean per row: the criterion is reached (with the default margin when ``target_proba`` is None);
        ``targets``: one per row, or one for all."""
        return self.slack(proba, targets) >= 0

    def reached(self, proba: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Boolean per row: the counterfactual reaches its target, as ``success`` reports it.

        The target class is the predicted class and, when ``target_proba`` is set, its probability is at
        least ``target_proba``. The default margin is the refinement's safety distance from the decision
        boundary, not part of success.
        """
        won = proba.argmax(axis=1) == targets
        if self.target_proba is None:
            return won
        return won & (proba[np.arange(len(proba)), targets] >= self.target_proba)


@dataclass(frozen=True)
class Search:
    """What :meth:`Refiner.search` found for a batch, with one predictor call.

    Attributes
    ----------
    targets
        Target class per row.
    cf, proba
        Per row, the cheapest candidate that reaches the target, and its probabilities; the original where it is
        already of its target class; the generator's proposal where no candidate reaches the target.
    x_proba
        The predictor's probabilities for the originals.
    done
        Rows that need nothing more: refined, or already of their target class. The others go through
        :meth:`Refiner.refine`: no candidate reaches the target (grown ones count only when accepted), or the
        proposal changes more than :data:`SEARCH_VARIABLES` variables.
    pool
        When asked for: ``(row, cf, proba)`` of every subset's cheapest candidate that reaches its row's target
        (rows not already of their target class), for the alternatives of :mod:`alibi_countergan.diverse`.
    extra_proba
        The predictor's probabilities for the caller's ``extra`` rows, scored in the same call (None without them).
    """

    targets: np.ndarray
    cf: np.ndarray
    proba: np.ndarray
    x_proba: np.ndarray
    done: np.ndarray
    pool: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None
    extra_proba: Optional[np.ndarray] = None


class Refiner:
    """Repairs and minimises a batch of counterfactuals with batched predictor calls (see the module).

    Parameters
    ----------
    space
        Statistics and constraints of the explainer.
    tensors
        ``space`` as numpy tensors of the inputs' dtype (for :func:`project`).
    predict
        The predictor on flat rows.
    criterion
        When a counterfactual reaches its target.
    regenerate
        The generator applied to flat rows (for the repair stage); None skips that candidate.
    shrink_resolution
        The grid search of rows that are not wide finds the scale to within ``1 / shrink_resolution``. Each
        round evaluates ``m`` scales per row in one call and narrows the interval ``m + 1`` times: narrow rows in
        small batches take every scale in one round (``shrink_resolution - 1``), wider rows and large batches 4
        per round and more rounds (see :data:`SHRINK_ROW_VALUES` and :data:`SHRINK_CALL_VALUES`).
    max_exact_variables
        Rows with up to this many variables get the drop stage (see :data:`EXHAUSTIVE_DROP_VARIABLES`) and
        the grid search of the shrink stage; wider rows (images) skip the drop stage and are shrunk by
        interpolation. Rows with more mutable variables than this skip the coordinate search of the repair
        stage.
    search_rounds
        Rounds of the repair stage's coordinate search (each moves one more variable, one predictor call).
    bracket_scales
        The scales of the residual that wide rows score before the interpolated one (:meth:`bracket`), strictly
        ascending in ``(0, 1)``; each is one more row per row scored. Empty: the interpolation starts from the
        original and the counterfactual alone.

    Raises
    ------
    ValueError
        For ``bracket_scales`` that are not strictly ascending numbers between 0 and 1 (ends excluded).
    """

    def __init__(self, space: FeatureSpace, tensors: SpaceTensors, predict: PredictFn, criterion: Criterion,
                 regenerate: Optional[RegenerateFn] = None, *, shrink_resolution: int = 125,
                 max_exact_variables: int = 32, search_rounds: int = 3,
                 bracket_scales: Sequence[float] = BRACKET_SCALES) -> None:
        self.space, self.tensors, self.predict = space, tensors, predict
        self.criterion, self.regenerate = criterion, regenerate
        self.shrink_resolution = shrink_resolution
        self.max_exact_variables, self.search_rounds = max_exact_variables, search_rounds
        # one Refiner per explain call: the default scales, checked once, are not checked again
        self.bracket_scales = BRACKET_SCALES if bracket_scales is BRACKET_SCALES else _checked_scales(bracket_scales)
        self.variables = space.variables

    # -- building and scoring candidates ---------------------------------------------------------------

    def build(self, x: np.ndarray, cf: np.ndarray, mask: np.ndarray, scale: np.ndarray,
              keep: Optional[np.ndarray] = None) -> np.ndarray:
        """Candidates between ``x`` and ``cf``: numeric changes scaled by ``scale`` (one per row), categories
        switched as in ``cf``, variables where ``keep`` (per column) is 0 reverted; every constraint held."""
        u = residual_towards(x, cf, self.tensors, scale)
        m = mask if keep is None else mask * keep
        return project(NUMPY_OPS, x, u.astype(x.dtype), m.astype(x.dtype), self.tensors, hard=True)

    def _build_one(self, x: np.ndarray, cf: np.ndarray, mask: np.ndarray, plan: OneRowPlan) -> np.ndarray:
        """:meth:`build`'s candidates of one row ``x`` and its counterfactual ``cf`` (flat ``(n_features,)``), as
        ``plan`` lays them out: the same values, projected on the changed variables' columns alone
        (:meth:`columns_moved`; the others stay the original's), so that the cost follows the few variables a
        proposal changes, not the row's width.

        The projection works column by column (a one-hot group as a whole), and a reverted variable's columns come
        out as the original's: so each distinct scale is projected once, with every changed variable kept, and each
        candidate gathers those values where it keeps a variable and the original's elsewhere, in one indexing of
        the plan's (the same numbers as projecting every candidate, for a few dozen rows instead of hundreds)."""
        at_level = self.columns_moved(x[None], cf[None], mask[None], plan.distinct, plan.columns)
        return np.concatenate([x, at_level.ravel()])[plan.gather]

    def columns_moved(self, x: np.ndarray, towards: np.ndarray, mask: np.ndarray, scale: np.ndarray,
                      columns: np.ndarray) -> np.ndarray:
        """The values that :meth:`build` gives ``columns`` where it keeps them, computed on those columns alone:
        ``x`` moved towards ``towards`` by ``scale`` (one per row) and projected with the columns' own constraints
        (:meth:`SpaceTensors.restricted`), ``(B, len(columns))``. :func:`project` works column by column (a one-hot
        group as a whole), so a candidate that changes nothing else is the original with these values on
        ``columns``, at the cost of the few columns it changes, not the row's width.

        ``x``, ``towards`` and ``mask`` are flat rows ``(B, n_features)``, or one row ``(1, n_features)`` against
        ``B`` scales; ``columns``: whole variables, ascending.
        """
        dtype, key = x.dtype, tuple(columns.tolist())
        if self.tensors is self.space.tensors_for(dtype):
            tensors = self.space.tensors_on(dtype, key)
        else:  # tensors of the caller's
            tensors = self.tensors.restricted(key)
        x_part = x[:, columns]
        u = residual_towards(x_part, towards[:, columns], tensors, scale)
        return project(NUMPY_OPS, x_part, u.astype(dtype), mask[:, columns].astype(dtype), tensors, hard=True)

    def cost(self, x: np.ndarray, cf: np.ndarray) -> np.ndarray:
        """Cost of each counterfactual: L1 in units of spread, plus the category cost of each switched
        categorical variable (1 by default)."""
        return self.variable_costs(x, cf).sum(axis=1)

    def variable_costs(self, x: np.ndarray, cf: np.ndarray) -> np.ndarray:
        """Cost of each variable's change, ``(B, n_variables)`` (see :meth:`Variables.costs`)."""
        return self.variables.costs(x, cf, self.tensors)

    # -- the pipeline ----------------------------------------------------------------------------------

    @property
    def wide(self) -> bool:
        """Whether the rows have more variables than :attr:`max_exact_variables` (images): no drop stage then, and
        the shrinking search interpolates (see the module)."""
        return self.variables.n > self.max_exact_variables

    # -- the one-call search (small batches of rows that are not wide) --------------------------------

    def search(self, x: np.ndarray, proposals: np.ndarray, options: np.ndarray, mask: np.ndarray,
               pool: bool = False, accept_grown: bool = False, extra: Optional[np.ndarray] = None,
               beyond: bool = False) -> Optional[Search]:
        """Score the originals, the generator's proposals and their candidates in one predictor call (see the
        module); None, with no call, when the rows are wide or the candidates would hold more than
        :data:`SEARCH_CALL_VALUES` values (the caller then takes the stages).

        Parameters
        ----------
        x
            Originals, flat ``(n, n_features)``.
        proposals
            The generator's counterfactual for each row and target option, ``(n * m, n_features)``, row-major.
        options
            Target options per row, ``(n, m)``: one column, the target; or every class (``m = n_classes``,
            column ``c`` for class ``c``) for the target 'other', which is then the class other than the
            original's whose proposal the predictor rates highest (as the stages' caller chooses it).
        mask
            1 where a feature may change, per row.
        pool
            Also return every subset's cheapest candidate that reaches the target (:attr:`Search.pool`).
        accept_grown
            Whether a row may be done with a candidate that grows the residual (a scale of :data:`GROW_SCALES`).
            False: those candidates are only in the pool, and a row that only they bring to the target is left
            to the stages, which repair it as they would without the search (a grid that coarse is no place to
            stop for a first counterfactual); True: they compete with the others (alternatives, which the first
            counterfactual already ranks below).
        extra
            More flat rows of the caller's, scored in the same call (:attr:`Search.extra_proba`); they count
            towards the call's size.
        beyond
            Grow the residual instead of shrinking it: each subset at the scales past 1, ``(SEARCH_STEPS + 1) /
            SEARCH_STEPS`` to the largest of :data:`GROW_SCALES` at the same step (the second call of a proposal
            whose own scales all miss the target; a subset of categories alone, which scales do not move, has no
            candidate). None, with no call, when no proposal has such a candidate.
        """
        n, m = options.shape
        if self.wide:
            return None
        n_extra = 0 if extra is None else len(extra)
        if m == 1:
            xs, masks = x, mask
        else:
            source_row = np.repeat(np.arange(n), m)
            xs, masks = x[source_row], mask[source_row]
        changed = self.variable_costs(xs, proposals) > 0
        grow = (pool or accept_grown) and not beyond  # grown candidates serve the pool and accepted ones only
        plan = self._plan(changed, search_budget(n * (m + 1) + n_extra, x.shape[1]), grow, beyond, each=n == 1)
        if plan is None:
            return None
        owner, scale, keep, subset, each = plan
        if each is not None:  # one proposal's candidates, or a single row's proposals' (in order)
            built = [self._build_one(xs[p], proposals[p], masks[p], one) for p, one in each]
            candidates = built[0] if len(built) == 1 else np.concatenate(built)
        else:
            candidates = self.build(xs[owner], proposals[owner], masks[owner], scale,
                                    keep[:, self.variables.of_column].astype(x.dtype))
        scored = np.concatenate([x, proposals, candidates] + ([] if extra is None else [extra.astype(x.dtype,
                                                                                                 copy=False)]))
        proba = self.predict(scored)
        end = len(proba) - n_extra
        x_proba, prop_proba, cand_proba = proba[:n], proba[n:n * (m + 1)], proba[n * (m + 1):end]
        targets, source = choose_targets(options, x_proba, prop_proba)
        if m == 1:  # each row's one proposal serves it
            cand_row = owner
        else:
            row_of = np.full(len(proposals), -1)  # the row each proposal serves (-1: another target's, not chosen)
            row_of[source] = np.arange(n)
            cand_row = row_of[owner]
        # grown candidates (scales past 1, planned only with grow) compete where accepted
        allowed: bool | np.ndarray = True if accept_grown or beyond or not grow else scale <= 1
        if n == 1 and m == 1:  # one row: its proposal and candidates follow the original in the call, in that order
            cf, cf_proba, met = self._pick_one(x, scored[1:end], proba[1:end], int(targets[0]), allowed)
        else:
            cf, cf_proba, met = self._pick(x, proposals[source], prop_proba[source], targets, cand_row, candidates,
                                           cand_proba, allowed)
        already = x_proba.argmax(axis=1) == targets
        if already.any():
            cf[already], cf_proba[already] = x[already], x_proba[already]
        many = changed.sum(axis=1)[source] > SEARCH_VARIABLES
        found = None
        if pool:
            live = np.flatnonzero((cand_row >= 0) & ~already[np.maximum(cand_row, 0)])
            live = live[self.criterion.met(cand_proba[live], targets[cand_row[live]])]
            # the smallest scale of each subset that reaches the target: the first such candidate of its group
            _, first = np.unique(owner[live] * 2 ** SEARCH_VARIABLES + subset[live], return_index=True)
            live = live[first]
            found = (cand_row[live], candidates[live], cand_proba[live])
        return Search(targets=targets, cf=cf, proba=cf_proba, x_proba=x_proba, done=already | (met & ~many),
                      pool=found, extra_proba=None if extra is None else proba[end:])

    def grow(self, x: np.ndarray, cf: np.ndarray, proba: np.ndarray, targets: np.ndarray, mask: np.ndarray
             ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Tuple[np.ndarray, Optional[np.ndarray]]]:
        """The second call of rows whose proposal ``cf`` (probabilities ``proba``) no candidate of :meth:`search`
        brings to the target: every subset of its changes grown past it (``search(..., beyond=True)``), scored with
        the repair stage's first round (:meth:`repair_candidates`).

        A grown candidate is kept only where no candidate of that round that reaches the target costs less (such as
        the generator's second output, in another direction): the stages would start from that one and only drop
        and shrink it. Returns ``(cf, proba, grown, repair)``: new arrays with the kept candidates, which rows they
        serve, and the round's candidates and probabilities of the other rows (:meth:`refine`'s ``repair``; no
        probabilities when the call was not made: no candidate past the proposals, or too many).
        """
        fix = self.repair_candidates(x, cf, targets, mask)
        found = self.search(x, cf, targets[:, None], mask, beyond=True, extra=fix.reshape(-1, x.shape[1]))
        if found is None or found.extra_proba is None:
            return cf.copy(), proba.copy(), np.zeros(len(x), dtype=bool), (fix, None)
        r, b = fix.shape[:2]
        fix_proba = found.extra_proba.reshape(r, b, -1)
        met = self.criterion.met(found.extra_proba, np.tile(targets, r)).reshape(r, b)
        cheapest = np.where(met, self.cost(np.tile(x, (r, 1)), fix.reshape(r * b, -1)).reshape(r, b), np.inf).min(0)
        grown = found.done & (self.cost(x, found.cf) <= cheapest)
        cf, proba = cf.copy(), proba.copy()
        cf[grown], proba[grown] = found.cf[grown], found.proba[grown]
        return cf, proba, grown, (fix[:, ~grown], fix_proba[:, ~grown])

    def _plan(self, changed: np.ndarray, budget: int, grow: bool, beyond: bool = False, each: bool = False
              ) -> Optional[Plan]:
        """The candidates of :meth:`search` for proposals changing the variables ``changed``
        ``(P, n_variables)``: ``(owner, scale, keep, subset, each)``, the proposal of each (ascending), its scale
        of the residual (ascending within a subset), its kept variables ``(N, n_variables)``, the index of its
        subset among its proposal's, and, when one proposal is searched (or ``each``: the proposals are one row's,
        one per target option), each searched proposal with the plan by which :meth:`_build_one` builds its
        candidates (None otherwise); None when there would be more than ``budget`` (or, ``beyond``, none).
        ``grow``: with the scales of :data:`GROW_SCALES` too; ``beyond``: the scales past 1 instead
        (:func:`_search_template`)."""
        v = self.variables
        if len(changed) == 1:  # a single explanation's proposal: no counting over proposals
            if 1 <= np.count_nonzero(changed[0]) <= SEARCH_VARIABLES:
                return self._plan_each([0], changed, budget, grow, beyond)
        n_changed = changed.sum(axis=1)
        searched = np.flatnonzero((n_changed >= 1) & (n_changed <= SEARCH_VARIABLES))
        if searched.size == 1 or (each and searched.size):
            return self._plan_each(searched.tolist(), changed, budget, grow, beyond)
        counts = n_changed[searched]
        which = np.nonzero(changed[searched])[1]  # each searched proposal's changed variables, in order
        first = np.cumsum(counts) - counts
        # a proposal's kind: how many variables it changes and which of them are numeric (a bit each); proposals
        # of one kind share a template of candidates
        place = np.arange(len(which)) - np.repeat(first, counts)
        numeric = (~v.is_group[which]).astype(np.int64) << place
        kinds = counts * 2 ** SEARCH_VARIABLES + (np.add.reduceat(numeric, first) if searched.size else first)
        unique, n_of_kind = np.unique(kinds, return_counts=True)
        templates = [_search_template(int(kind) >> SEARCH_VARIABLES, int(kind) % 2 ** SEARCH_VARIABLES, SEARCH_STEPS,
                                      grow, beyond) for kind in unique]
        total = sum(len(t[1]) * int(c) for t, c in zip(templates, n_of_kind))
        if total > budget or (beyond and not total):
            return None
        owners, scales, subsets = [np.zeros(0, dtype=np.int64)], [np.zeros(0)], [np.zeros(0, dtype=np.int64)]
        keeps = [np.zeros((0, v.n), dtype=bool)]
        for kind, (kept, scale, subset) in zip(unique, templates):
            at = np.flatnonzero(kinds == kind)
            k = int(kind) >> SEARCH_VARIABLES
            where = which[first[at][:, None] + np.arange(k)]  # (rows, k) variable indices
            keep = np.zeros((len(at), len(scale), v.n), dtype=bool)
            r, c = np.arange(len(at))[:, None, None], np.arange(len(scale))[None, :, None]
            keep[r, c, where[:, None, :]] = kept[None]
            owners.append(np.repeat(searched[at], len(scale)))
            scales.append(np.tile(scale, len(at)))
            subsets.append(np.tile(subset, len(at)))
            keeps.append(keep.reshape(-1, v.n))
        owner = np.concatenate(owners)
        order = np.argsort(owner, kind="stable")
        return (owner[order], np.concatenate(scales)[order], np.concatenate(keeps)[order],
                np.concatenate(subsets)[order], None)

    def _plan_each(self, searched: List[int], changed: np.ndarray, budget: int, grow: bool, beyond: bool
                   ) -> Optional[Plan]:
        """:meth:`_plan` for the ``searched`` proposals (ascending) one by one, each one's candidates from a cache
        (:func:`_single_plan`): the same candidates in the same order as the batch path, without building its
        templates for a few proposals."""
        v = self.variables
        parts = []
        for p in searched:
            columns = np.flatnonzero(changed[p][v.of_column])
            which = np.flatnonzero(changed[p])
            keep, scale, subset, one = _single_plan(
                tuple(which.tolist()), tuple(v.is_group[which].tolist()), v.n, grow, beyond, tuple(columns.tolist()),
                tuple(v.of_column[columns].tolist()), len(v.of_column))
            if len(scale):  # beyond: none for a proposal of categories alone
                parts.append((p, keep, scale, subset, one))
        if not parts:
            return None
        owners, keeps, scales, subsets, plans = zip(*parts)
        total = sum(len(scale) for scale in scales)
        if total > budget:
            return None
        each = list(zip(owners, plans))
        if len(parts) == 1:
            return np.broadcast_to(np.intp(owners[0]), scales[0].shape), scales[0], keeps[0], subsets[0], each
        return (np.repeat(owners, [len(scale) for scale in scales]), np.concatenate(scales), np.concatenate(keeps),
                np.concatenate(subsets), each)

    def _pick(self, x: np.ndarray, cf: np.ndarray, proba: np.ndarray, targets: np.ndarray, cand_row: np.ndarray,
              candidates: np.ndarray, cand_proba: np.ndarray, allowed: bool | np.ndarray
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row, the cheapest of its proposal ``cf`` and its ``allowed`` candidates (those whose ``cand_row`` is
        the row) that reaches the target: ``(cf, proba, met)``, ``met`` False (and the proposal kept) where none
        does."""
        cf, proba = cf.copy(), proba.copy()
        met = self.criterion.met(proba, targets)
        cost = np.where(met, self.cost(x, cf), np.inf)
        live = np.flatnonzero((cand_row >= 0) & allowed)
        # one row: every candidate's target is its target (a column of the probabilities, no gather)
        live_targets = targets[0] if len(x) == 1 else targets[cand_row[live]]
        live = live[self.criterion.met(cand_proba[live], live_targets)]
        if live.size:
            rows = cand_row[live]
            cand_cost = self.cost(x if len(x) == 1 else x[rows], candidates[live])
            best = _argmin_per_row(rows, cand_cost, len(x))
            better = np.flatnonzero(best >= 0)
            better = better[cand_cost[best[better]] < cost[better]]
            cf[better], proba[better] = candidates[live[best[better]]], cand_proba[live[best[better]]]
            met[better] = True
        return cf, proba, met

    def _pick_one(self, x: np.ndarray, pool: np.ndarray, proba: np.ndarray, target: int,
                  allowed: bool | np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_pick` for one row ``x`` ``(1, n_features)``: ``pool`` holds its proposal, then its candidates (those
        ``allowed`` compete), with their probabilities ``proba``. The first of the cheapest that reach the target
        wins, so the proposal where a candidate only ties it, as in :meth:`_pick`."""
        ok = self.criterion.met(proba, target)
        ok[1:] &= allowed
        live = np.flatnonzero(ok)
        best = live[np.argmin(self.cost(x, pool[live]))] if live.size else 0
        return pool[best:best + 1].copy(), proba[best:best + 1].copy(), np.array([live.size > 0])

    # -- the stages -----------------------------------------------------------------------------------

    def refine(self, x: np.ndarray, cf: np.ndarray, targets: np.ndarray, mask: np.ndarray,
               proba: np.ndarray, x_proba: Optional[np.ndarray] = None,
               bracket: Optional[Tuple[np.ndarray, np.ndarray]] = None,
               repair: Optional[Tuple[np.ndarray, Optional[np.ndarray]]] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Repair, drop and shrink; returns the counterfactuals and their probabilities (new arrays).

        Parameters
        ----------
        x, cf
            Originals and the generator's counterfactuals, flat ``(B, n_features)``.
        targets
            Target class per row.
        mask
            1 where a feature may change, per row.
        proba
            The predictor's probabilities for ``cf``.
        x_proba
            The predictor's probabilities for ``x``, when the caller has them (the interpolating search of wide
            rows starts from them); None: one more predictor call when they are needed.
        bracket
            Wide rows only: :meth:`bracket`'s candidates for ``(x, cf)`` and the predictor's probabilities for them,
            when the caller scored them with ``cf``; None: the shrink scores them (one more call).
        repair
            :meth:`repair_candidates` of ``(x, cf)``, ``(R, B, n_features)``, when the caller made them, and the
            predictor's probabilities for them, ``(R, B, n_classes)``, when it scored them too (None: the repair
            scores them, one more call); None: the repair makes and scores them.
        """
        cf, proba = cf.copy(), proba.copy()
        repaired = ~self.criterion.met(proba, targets)
        bad = np.flatnonzero(repaired)
        if bad.size:
            known = None if repair is None else (repair[0][:, bad], None if repair[1] is None else repair[1][:, bad])
            cf[bad], proba[bad] = self._repair(x[bad], cf[bad], targets[bad], mask[bad], proba[bad], known)
        ok = np.flatnonzero(self.criterion.met(proba, targets))
        if ok.size:
            args = x[ok], targets[ok], mask[ok]
            if self.wide:
                start = self.predict(x[ok]) if x_proba is None else x_proba[ok]
                points, points_proba = (None, None) if bracket is None else (bracket[0][:, ok], bracket[1][:, ok])
                cf[ok], proba[ok] = self._interpolate(*args, cf[ok], proba[ok], start, points, points_proba,
                                                      repaired[ok])
            else:
                cf[ok], proba[ok] = self._drop(*args, cf[ok], proba[ok])
                cf[ok], proba[ok] = self._shrink(*args, cf[ok], proba[ok])
        return cf, proba

    def _choose(self, x: np.ndarray, targets: np.ndarray, owners: List[np.ndarray], candidates: List[np.ndarray],
                cf: np.ndarray, proba: np.ndarray, fallback_best_slack: bool,
                known_proba: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Per row, the cheapest candidate that reaches the target (``owners`` maps candidates to rows; both
        are lists of blocks; no candidates leave ``cf`` and ``proba`` as they are).

        With ``fallback_best_slack``, a row that no candidate brings to the target takes the candidate
        closest to it when that is closer than the row's current counterfactual. ``known_proba`` gives the
        candidates' probabilities when they were evaluated already (no predictor call then).
        """
        if not candidates:
            return cf, proba
        owner, stacked = np.concatenate(owners), np.concatenate(candidates)
        cand_proba = self.predict(stacked) if known_proba is None else known_proba
        slack = self.criterion.slack(cand_proba, targets[owner])
        cost = np.where(slack >= 0, self.cost(x[owner], stacked), np.inf)
        best = _argmin_per_row(owner, cost, len(x))
        chosen = best >= 0
        if fallback_best_slack:
            closest = _argmin_per_row(owner, -slack, len(x))
            current = self.criterion.slack(proba, targets)
            better = ~chosen & (closest >= 0)
            better[better] = slack[closest[better]] > current[better]
            best = np.where(better, closest, best)
            chosen |= better
        cf, proba = cf.copy(), proba.copy()
        cf[chosen], proba[chosen] = stacked[best[chosen]], cand_proba[best[chosen]]
        return cf, proba

    def repair_candidates(self, x: np.ndarray, cf: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The first round of the repair stage, ``(R, B, n_features)``: the generator applied to ``cf`` (when the
        refiner has it), then ``cf`` and that output with the residual grown by each of :data:`GROW_SCALES`."""
        bases = [cf]
        if self.regenerate is not None:
            bases.append(self.regenerate(cf, targets, mask))
        candidates = [bases[-1]] if len(bases) > 1 else []
        for base in bases:
            candidates += [self.build(x, base, mask, np.full(len(x), s)) for s in GROW_SCALES]
        return np.stack(candidates)

    def _repair(self, x: np.ndarray, cf: np.ndarray, targets: np.ndarray, mask: np.ndarray, proba: np.ndarray,
                known: Optional[Tuple[np.ndarray, Optional[np.ndarray]]] = None) -> Tuple[np.ndarray, np.ndarray]:
        candidates, known_proba = (self.repair_candidates(x, cf, targets, mask), None) if known is None else known
        owners = [np.arange(len(x))] * len(candidates)
        cf, proba = self._choose(x, targets, owners, list(candidates), cf, proba, fallback_best_slack=True,
                                 known_proba=None if known_proba is None else known_proba.reshape(-1, proba.shape[1]))
        for _ in range(self.search_rounds):
            bad = np.flatnonzero(~self.criterion.met(proba, targets))
            if not bad.size or self._mutable_variables(mask[bad]).sum(axis=1).max() > self.max_exact_variables:
                break
            cf[bad], proba[bad] = self._coordinate_step(x[bad], targets[bad], mask[bad], cf[bad], proba[bad])
        return cf, proba

    def _mutable_variables(self, mask: np.ndarray) -> np.ndarray:
        """Per row, which variables may change."""
        return np.logical_or.reduceat(mask > 0, self.variables.starts, axis=1)

    def _coordinate_step(self, x: np.ndarray, targets: np.ndarray, mask: np.ndarray, cf: np.ndarray,
                         proba: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """One round of a coordinate search for rows that still miss their target: every mutable variable is
        moved, alone, to each end of its range (or to each other category), and the move that brings the row
        closest to its target is kept. The drop and shrink stages then undo what the target does not need."""
        v, space = self.variables, self.space
        owners, candidates = [], []
        for var in np.flatnonzero(self._mutable_variables(mask).any(axis=0)):
            rows = np.flatnonzero(mask[:, v.starts[var]] > 0)
            start = int(v.starts[var])
            stop = int(v.starts[var + 1]) if var + 1 < v.n else space.n_features
            if v.is_group[var]:
                values = [np.eye(stop - start, dtype=x.dtype)[c] for c in range(stop - start)]
            else:
                values = [space.lower[start:stop], space.upper[start:stop]]
            for value in values:
                moved = cf[rows].copy()
                moved[:, start:stop] = value
                changed = np.any(moved != cf[rows], axis=1)
                if changed.any():
                    keep = rows[changed]
                    candidates.append(self.build(x[keep], moved[changed], mask[keep], np.ones(len(keep))))
                    owners.append(keep)
        return self._choose(x, targets, owners, candidates, cf, proba, fallback_best_slack=True)

    def _drop(self, x: np.ndarray, targets: np.ndarray, mask: np.ndarray, cf: np.ndarray,
              proba: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        v = self.variables
        costs = self.variable_costs(x, cf)
        changed = costs > 0
        n_changed = changed.sum(axis=1)
        owners, candidates = [], []
        for k in range(2, EXHAUSTIVE_DROP_VARIABLES + 1):  # few changes: every subset of them reverted
            rows = np.flatnonzero(n_changed == k)
            if rows.size:
                owner, reverted = self._subset_reversals(x, cf, mask, changed, rows, k)
                owners.append(owner)
                candidates.append(reverted)
        many = np.flatnonzero(n_changed > EXHAUSTIVE_DROP_VARIABLES)
        if many.size:  # more: every single reversal now, then cumulative reversals in the order they suggest
            at, var = np.nonzero(changed[many])
            rows = many[at]
            keep = (v.of_column[None, :] != var[:, None]).astype(x.dtype)
            owners.append(rows)
            candidates.append(self.build(x[rows], cf[rows], mask[rows], np.ones(len(rows)), keep))
        if not candidates:
            return cf, proba  # nothing to drop: one changed variable is needed, or the row is its own target
        known = [self.predict(np.concatenate(candidates))]
        if many.size:
            need = np.full(changed.shape, np.inf)  # the higher the slack without a variable, the less it is needed
            need[rows, var] = -self.criterion.slack(known[0][len(known[0]) - len(rows):], targets[rows])
            order = np.lexsort((-costs, need))  # per row: least needed first, most costly first among equals
            rank = np.argsort(order, axis=1)  # the inverse permutation: each variable's place in the order
            cumulative = []
            for dropped in range(2, int(n_changed.max())):
                rows = many[dropped < n_changed[many]]
                keep = (rank[rows] >= dropped)[:, v.of_column].astype(x.dtype)
                owners.append(rows)
                cumulative.append(self.build(x[rows], cf[rows], mask[rows], np.ones(len(rows)), keep))
            known.append(self.predict(np.concatenate(cumulative)))
            candidates += cumulative
        return self._choose(x, targets, owners, candidates, cf, proba, fallback_best_slack=False,
                            known_proba=np.concatenate(known))

    def _subset_reversals(self, x: np.ndarray, cf: np.ndarray, mask: np.ndarray, changed: np.ndarray,
                          rows: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """For rows that change exactly ``k`` variables, the candidates reverting each non-empty proper subset
        of them: ``(owner, candidates)``, ``2 ** k - 2`` per row."""
        v = self.variables
        subsets = ((np.arange(1, 2 ** k - 1)[:, None] >> np.arange(k)[None, :]) & 1).astype(bool)  # True: revert
        which = np.nonzero(changed[rows])[1].reshape(len(rows), k)  # each row's changed variables, in order
        keep_var = np.ones((len(rows), len(subsets), v.n), dtype=x.dtype)
        r, sub, j = np.nonzero(np.broadcast_to(subsets[None], (len(rows), len(subsets), k)))
        keep_var[r, sub, which[r, j]] = 0
        owner = np.repeat(rows, len(subsets))
        keep = keep_var[:, :, v.of_column].reshape(len(owner), -1)
        return owner, self.build(x[owner], cf[owner], mask[owner], np.ones(len(owner)), keep)

    def _shrink(self, x: np.ndarray, targets: np.ndarray, mask: np.ndarray, cf: np.ndarray,
                proba: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        n = len(x)
        # a narrow tabular row: every scale on the grid in one call; otherwise 4 scales per call. Only these two
        # (both on the grid of 1/125) so that a row's result does not depend on the size of its batch
        d, every = x.shape[1], self.shrink_resolution - 1
        m = every if every * d <= SHRINK_ROW_VALUES and n * every * d <= SHRINK_CALL_VALUES else 4
        rounds = int(np.ceil(np.log(self.shrink_resolution) / np.log(m + 1) - 1e-9))
        lo, hi = np.zeros(n), np.ones(n)
        best, best_proba = cf.copy(), proba.copy()
        fractions = np.arange(1, m + 1) / (m + 1)
        for _ in range(rounds):
            scales = lo[None, :] + (hi - lo)[None, :] * fractions[:, None]  # (m, n)
            owner = np.tile(np.arange(n), m)
            candidates = self.build(np.tile(x, (m, 1)), np.tile(cf, (m, 1)), np.tile(mask, (m, 1)),
                                    scales.reshape(-1))
            cand_proba = self.predict(candidates)
            met = self.criterion.met(cand_proba, targets[owner]).reshape(m, n)
            first = np.where(met.any(axis=0), met.argmax(axis=0), m)  # smallest scale that reaches the target
            found = first < m
            pick = first[found] * n + np.flatnonzero(found)
            best[found], best_proba[found] = candidates[pick], cand_proba[pick]
            new_hi = np.where(found, scales[np.minimum(first, m - 1), np.arange(n)], hi)
            below = np.where(found, first - 1, m - 1)
            lo = np.where(below >= 0, scales[np.maximum(below, 0), np.arange(n)], lo)
            hi = new_hi
        return best, best_proba

    def bracket(self, x: np.ndarray, cf: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The candidates of wide rows at :attr:`bracket_scales`, ``(len(bracket_scales), B, n_features)``: scored
        with the proposals where the caller can (then the shrink costs one call more), else by the shrink itself."""
        if not self.bracket_scales:
            return np.empty((0,) + x.shape, dtype=x.dtype)
        return np.stack([self.build(x, cf, mask, np.full(len(x), s)) for s in self.bracket_scales])

    def _interpolate(self, x: np.ndarray, targets: np.ndarray, mask: np.ndarray, cf: np.ndarray,
                     proba: np.ndarray, x_proba: np.ndarray, points: Optional[np.ndarray] = None,
                     points_proba: Optional[np.ndarray] = None, fresh: Optional[np.ndarray] = None
                     ) -> Tuple[np.ndarray, np.ndarray]:
        """The shrinking search of wide rows, two calls at most (one when the bracket is known).

        The target's log-odds are known at the original (scale 0), at :attr:`bracket_scales` and at the
        counterfactual (scale 1). Between the largest of those scales that misses the target and the next, which
        reaches it, the crossing is interpolated linearly and scored (one call, one candidate per row); it wins if
        it reaches the target, else the bracket's upper end does.

        Parameters
        ----------
        x, targets, mask, cf, proba
            Originals, targets, masks, counterfactuals that reach their target and their probabilities.
        x_proba
            The predictor's probabilities for ``x``.
        points, points_proba
            :meth:`bracket`'s candidates for ``(x, cf)`` and their probabilities, ``(len(bracket_scales), B, ...)``;
            None: built and scored here (one call).
        fresh
            Rows whose ``points`` are stale (their counterfactual was repaired since): scored again here.
        """
        n, p = len(x), len(self.bracket_scales)
        if points is None or points_proba is None:
            rows = np.arange(n)  # every row's bracket is scored here
        else:
            rows = np.flatnonzero(fresh) if fresh is not None else np.empty(0, dtype=np.int64)
        if rows.size:
            built = self.bracket(x[rows], cf[rows], mask[rows])
            scored = (self.predict(built.reshape(-1, x.shape[1])) if p else proba[:0]).reshape(p, len(rows),
                                                                                            proba.shape[1])
            if points is None or points_proba is None:
                points, points_proba = built, scored
            else:
                points, points_proba = points.copy(), points_proba.copy()
                points[:, rows], points_proba[:, rows] = built, scored
        assert points is not None and points_proba is not None
        threshold = self.criterion.log_odds_threshold
        scales = np.array((0.0,) + self.bracket_scales + (1.0,))
        f = np.stack([_log_odds(x_proba, targets)] + [_log_odds(p, targets) for p in points_proba]
                     + [_log_odds(proba, targets)], axis=1) - threshold
        met = np.stack([np.zeros(n, dtype=bool)] + [self.criterion.met(p, targets) for p in points_proba]
                       + [np.ones(n, dtype=bool)], axis=1)
        hi_at = met.argmax(axis=1)  # the smallest known scale that reaches the target (scale 0 never does)
        r = np.arange(n)
        lo, hi = scales[hi_at - 1], scales[hi_at]
        f_lo, f_hi = np.minimum(f[r, hi_at - 1], -1e-3), np.maximum(f[r, hi_at], 1e-3)
        best, best_proba = cf.copy(), proba.copy()
        inner = np.flatnonzero(hi_at <= p)
        best[inner], best_proba[inner] = points[hi_at[inner] - 1, inner], points_proba[hi_at[inner] - 1, inner]
        at = lo + (hi - lo) * np.clip(-f_lo / (f_hi - f_lo), 0.05, 0.95)  # never the ends: a new scale
        candidates = self.build(x, cf, mask, at)
        cand_proba = self.predict(candidates)
        take = np.flatnonzero(self.criterion.met(cand_proba, targets))
        best[take], best_proba[take] = candidates[take], cand_proba[take]
        return best, best_proba


def _checked_scales(bracket_scales: Sequence[float]) -> Tuple[float, ...]:
    """``bracket_scales`` as a tuple of floats, checked (see :class:`Refiner`)."""
    scales = tuple(float(s) for s in bracket_scales)
    if any(not 0.0 < s < 1.0 for s in scales) or any(a >= b for a, b in zip(scales, scales[1:])):
        raise ValueError(f"bracket_scales must be strictly ascending scales between 0 and 1 (ends excluded), got "
                         f"{tuple(bracket_scales)!r}.")
    return scales


def _log_odds(proba: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Log-odds of each row's target class, its probability clipped to ``[1e-7, 1 - 1e-7]``."""
    p = np.clip(proba[np.arange(len(proba)), targets].astype(np.float64), 1e-7, 1.0 - 1e-7)
    return np.log(p) - np.log1p(-p)


def _argmin_per_row(owner: np.ndarray, key: np.ndarray, n_rows: int) -> np.ndarray:
    """For each row, the index of its candidate with the smallest finite ``key`` (-1 if none)."""
    out = np.full(n_rows, -1)
    if n_rows == 1 and key.size:  # the first smallest, as the sort below picks it (infinities sort last)
        first = int(np.argmin(key))
        if np.isfinite(key[first]):
            out[0] = first
            return out
    finite = np.flatnonzero(np.isfinite(key))
    if finite.size and n_rows == 1:
        out[0] = finite[np.argmin(key[finite])]
    elif finite.size:
        order = finite[np.lexsort((key[finite], owner[finite]))]
        rows, first = np.unique(owner[order], return_index=True)
        out[rows] = order[first]
    return out


@functools.lru_cache(maxsize=1024)
def _single_plan(which: Tuple[int, ...], grouped: Tuple[bool, ...], n_variables: int, grow: bool, beyond: bool,
                 columns: Tuple[int, ...], column_variables: Tuple[int, ...], n_features: int
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, OneRowPlan]:
    """:meth:`Refiner._plan`'s candidates of one proposal that changes the variables ``which`` (one-hot groups
    where ``grouped``), out of ``n_variables``, in the ``columns`` (of the variables ``column_variables``) of rows of
    ``n_features``: ``(keep, scale, subset, plan)``, read-only, the same as the batch path builds (``grow``: with
    :data:`GROW_SCALES`; ``beyond``: past 1), and how :meth:`Refiner._build_one` builds them. A served explainer sees
    the same few patterns of changed variables again and again."""
    numeric_bits = sum(1 << i for i, g in enumerate(grouped) if not g)
    kept, scale, subset = _search_template(len(which), numeric_bits, SEARCH_STEPS, grow, beyond)
    keep = np.zeros((len(scale), n_variables), dtype=bool)
    keep[:, list(which)] = kept
    keep.flags.writeable = False
    return keep, scale, subset, one_row_plan(keep, scale, columns, column_variables, n_features)


def search_budget(n_scored: int, n_features: int) -> int:
    """How many candidates the one-call search may add to a call that scores ``n_scored`` rows already (originals
    and proposals) of ``n_features`` each, within :data:`SEARCH_CALL_VALUES`; negative: not even those fit."""
    return SEARCH_CALL_VALUES // n_features - n_scored


def choose_targets(options: np.ndarray, x_proba: np.ndarray, prop_proba: np.ndarray
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """The target of each row and the index of its proposal (see :meth:`Refiner.search`'s ``options``)."""
    n, m = options.shape
    rows = np.arange(n)
    if m == 1:
        return options[:, 0].copy(), rows
    k = x_proba.shape[1]
    order = (x_proba.argmax(axis=1)[:, None] + np.arange(1, k)[None, :]) % k  # the other classes, in that order
    rated = prop_proba.reshape(n, m, k)[rows[:, None], order, order]
    targets = order[rows, rated.argmax(axis=1)]
    return targets, rows * m + targets


@functools.cache
def _search_template(k: int, numeric_bits: int, steps: int, grow: bool, beyond: bool = False
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidates of a proposal that changes ``k`` variables, numeric where ``numeric_bits`` has a bit:
    ``(kept, scale, subset)``, each non-empty subset of the ``k`` (True where kept, ``(N, k)``) at every scale of the
    grid of ``steps`` in ascending order (then :data:`GROW_SCALES` with ``grow``), or at scale 1 alone when it keeps
    no numeric variable, and the index of each candidate's subset. With ``beyond``, the grid continues past 1 instead,
    ``(steps + 1) / steps`` to :data:`GROW_SCALES`' largest, and a subset of categories alone (scored at scale 1
    already) has no candidate."""
    subsets = ((np.arange(1, 2 ** k)[:, None] >> np.arange(k)[None, :]) & 1).astype(bool)
    numeric = ((numeric_bits >> np.arange(k)) & 1).astype(bool)
    moves = (subsets & numeric).any(axis=1)
    if beyond:
        grid = np.arange(steps + 1, int(round(max(GROW_SCALES) * steps)) + 1) / steps
    else:
        grid = np.concatenate([np.arange(1, steps + 1) / steps, GROW_SCALES if grow else ()])
    repeats = np.where(moves, len(grid), 0 if beyond else 1)
    at = np.arange(int(repeats.sum())) - np.repeat(np.cumsum(repeats) - repeats, repeats)
    scale = np.where(np.repeat(moves, repeats), grid[at % len(grid)], 1.0)
    kept = np.repeat(subsets, repeats, axis=0)
    subset = np.repeat(np.arange(len(subsets)), repeats)
    kept.flags.writeable = scale.flags.writeable = subset.flags.writeable = False
    return kept, scale, subset
