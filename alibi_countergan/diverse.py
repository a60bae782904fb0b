"""Several different counterfactuals per instance, each minimal, ranked by cost.

The generator is trained with random subsets of features frozen (``random_mask_rate``), so it can
propose a counterfactual that avoids any given variable. :func:`diverse_counterfactuals` uses that:
for each variable the first counterfactual changes, the generator is asked again with that variable
frozen, and every proposal goes through the same refinement (:class:`~alibi_countergan.refine.Refiner`)
as the first one. All rows and all frozen variables go through one generator pass and one refinement,
so the cost is a few more batched predictor calls, whatever the batch size: one more for a small batch of
tabular rows, whose alternatives fit in the refinement's one-call search, which also offers, at no further
call, the cheapest valid candidate of every subset of each proposal's changes.

That call also scores each row's **single-variable moves** (tabular rows only): every mutable numeric variable
moved alone towards each end of its range, at each scale of the search's grid, and every one-hot variable
switched alone to each other category (:func:`single_variable_moves`). The smallest move of each variable and
direction that reaches the target is an alternative that changes that variable only. When the first
counterfactual changes one variable, freezing it yields one new proposal, and its subsets are no new recourse;
the moves are what gives such a row its other alternatives (on COMPAS with race, sex and age immutable, most
rows are of that kind). A row that has ``k`` valid alternatives changing different sets of variables after that
call is done: only the others' alternative proposals that miss their target go through the refinement's repair
stage (more calls).

The valid, distinct results are chosen by cost, each changing a set of variables that holds none of those
already chosen, and then, while fewer than asked, the cheapest of the rest.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from alibi_countergan.refine import SEARCH_STEPS, Refiner, RegenerateFn


@dataclass(frozen=True)
class Alternatives:
    """Counterfactuals of a batch, several per row, as flat arrays.

    Attributes
    ----------
    owner
        Row of each counterfactual.
    cf
        The counterfactuals, ``(M, n_features)``.
    proba
        Their probabilities.
    cost
        Their cost (see :meth:`Refiner.cost`).
    valid
        Whether each reaches its row's target class.
    changed
        The variables each one changes, ``(M, n_variables)``.
    """

    owner: np.ndarray
    cf: np.ndarray
    proba: np.ndarray
    cost: np.ndarray
    valid: np.ndarray
    changed: np.ndarray


def diverse_counterfactuals(x: np.ndarray, cf: np.ndarray, proba: np.ndarray, targets: np.ndarray,
                            mask: np.ndarray, refiner: Refiner, generate: RegenerateFn,
                            refine: bool = True, x_proba: Optional[np.ndarray] = None, k: int = 1
                            ) -> Alternatives:
    """The first counterfactuals, for each variable they change the refined one that leaves it alone, and (refined,
    tabular rows) the smallest single-variable moves that reach the target.

    Parameters
    ----------
    x, cf, proba
        Originals, their (refined) first counterfactuals and those counterfactuals' probabilities.
    targets, mask
        Target class and mutable features of each row.
    refiner
        The refinement applied to every new proposal.
    generate
        The generator's projected output for flat rows, targets and masks.
    refine
        Whether the new proposals are refined (False keeps the generator's raw output).
    x_proba
        The predictor's probabilities for ``x``, passed on to :meth:`Refiner.refine` (None: predicted again
        where the refinement needs them).
    k
        The counterfactuals asked for per row: a row with ``k`` valid ones changing different sets of variables
        after the one-call search skips the repair of its missing alternative proposals.

    Returns
    -------
    Every counterfactual found (the first ones included), duplicates removed.
    """
    v = refiner.variables
    changed = refiner.variable_costs(x, cf) > 0
    rows, var = np.nonzero(changed)
    owner, found, found_proba = [np.arange(len(x))], [cf], [proba]
    moves = None
    if refine and not refiner.wide and rows.size:  # rows already of their target (nothing changed) get no moves
        moved = np.unique(rows)
        move_row, move_cf, move_id = single_variable_moves(x[moved], mask[moved], refiner)
        moves = (moved[move_row], move_cf, move_id)
    moves_proba, moves_pick = None, None
    if rows.size:
        frozen = mask[rows] * (v.of_column[None, :] != var[:, None])
        first = (np.arange(len(x)), cf, proba)
        local, alt, alt_proba, moves_proba, moves_pick = _alternatives(
            x[rows], targets[rows], frozen, refiner, generate, refine, None if x_proba is None else x_proba[rows],
            _Context(rows=rows, x=x, targets=targets, k=k, first=first, moves=moves))
        owner.append(rows[local])
        found.append(alt)
        found_proba.append(alt_proba)
    if moves is not None and len(moves[0]):
        if moves_proba is None:
            moves_proba = refiner.predict(moves[1])
        pick = _smallest_valid_moves(moves, moves_proba, targets, refiner) if moves_pick is None else moves_pick
        owner.append(moves[0][pick])
        found.append(moves[1][pick])
        found_proba.append(moves_proba[pick])
    all_owner, all_cf, all_proba = np.concatenate(owner), np.concatenate(found), np.concatenate(found_proba)
    keep = _distinct(all_owner, all_cf)
    all_owner, all_cf, all_proba = all_owner[keep], all_cf[keep], all_proba[keep]
    valid = refiner.criterion.reached(all_proba, targets[all_owner])
    costs = refiner.variable_costs(x[all_owner], all_cf)
    return Alternatives(owner=all_owner, cf=all_cf, proba=all_proba, cost=costs.sum(axis=1), valid=valid,
                        changed=costs > 0)


@dataclass(frozen=True)
class _Context:
    """What :func:`_alternatives` needs to know of the whole batch to skip repairs a row does not need."""

    rows: np.ndarray
    """The batch row of each alternative proposal."""
    x: np.ndarray
    targets: np.ndarray
    k: int
    first: Tuple[np.ndarray, np.ndarray, np.ndarray]
    """``(row, cf, proba)`` of the first counterfactuals."""
    moves: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]
    """:func:`single_variable_moves` of the batch, scored in the search's call; None without them."""


def _alternatives(x: np.ndarray, targets: np.ndarray, mask: np.ndarray, refiner: Refiner, generate: RegenerateFn,
                  refine: bool, x_proba: Optional[np.ndarray], context: _Context
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """The generator's counterfactuals under ``mask``, refined as the first ones are: ``(row, cf, proba,
    moves_proba, moves_pick)``, the last two the probabilities of ``context.moves`` when the search scored them and
    :func:`_smallest_valid_moves` of them when it was needed here (else None).

    Where the batch fits in the one-call search (:meth:`Refiner.search`), every subset's cheapest candidate that
    reaches the target comes with each row's best one (several alternatives per proposal, at no further call), and
    the rows the search leaves over take the stages, except those of a batch row that already has ``context.k``
    valid alternatives; otherwise the stages alone, one counterfactual per row.
    """
    proposal = generate(x, targets, mask)
    moves = context.moves
    searched = refiner.search(x, proposal, targets[:, None], mask, pool=True, accept_grown=True,
                              extra=None if moves is None else moves[1]) if refine else None
    if searched is None and refine and moves is not None:  # too many with the moves: they take a call of their own
        searched = refiner.search(x, proposal, targets[:, None], mask, pool=True, accept_grown=True)
    rows = np.arange(len(x))
    if searched is None:
        proposal_proba = refiner.predict(proposal)
        if not refine:
            return rows, proposal, proposal_proba, None, None
        return (rows,) + refiner.refine(x, proposal, targets, mask, proposal_proba, x_proba) + (None, None)
    cf, proba = searched.cf, searched.proba
    todo = np.flatnonzero(~searched.done)
    pool_rows, pool_cf, pool_proba = searched.pool if searched.pool is not None else (rows[:0], cf[:0], proba[:0])
    pick = None
    if todo.size and context.k > 1:
        # the batch rows that already have k valid alternatives changing different variables need no repair
        done = rows[searched.done]
        have = [context.first, (context.rows[done], cf[done], proba[done]),
                (context.rows[pool_rows], pool_cf, pool_proba)]
        if moves is not None and searched.extra_proba is not None:
            pick = _smallest_valid_moves(moves, searched.extra_proba, context.targets, refiner)
            have.append((moves[0][pick], moves[1][pick], searched.extra_proba[pick]))
        enough = _valid_sets_per_row(have, context.x, context.targets, refiner) >= context.k
        todo = todo[~enough[context.rows[todo]]]
    if todo.size:
        cf[todo], proba[todo] = refiner.refine(x[todo], cf[todo], targets[todo], mask[todo], proba[todo],
                                               searched.x_proba[todo])
    return (np.concatenate([rows, pool_rows]), np.concatenate([cf, pool_cf]), np.concatenate([proba, pool_proba]),
            searched.extra_proba, pick)


def single_variable_moves(x: np.ndarray, mask: np.ndarray, refiner: Refiner
                          ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's mutable variables moved one at a time: ``(row, candidate, move)``.

    A numeric variable moves towards each end of its range that differs from its value, at every scale
    ``1 / SEARCH_STEPS, ..., 1`` of the way, ascending (the constraints held by :meth:`Refiner.build`: a monotone
    variable's forbidden direction gives the original back, an ordinal one lands on its grid); a one-hot variable
    switches to each other category.

    Parameters
    ----------
    x
        Originals, flat ``(n, n_features)``.
    mask
        1 where a feature may change, per row.
    refiner
        The refinement whose feature space and candidate builder are used.

    Returns
    -------
    ``(row, candidate, move)``: the row of each candidate, the candidates ``(N, n_features)``, and a number per
    (row, variable, direction or category), each move's candidates contiguous and in ascending scale.
    """
    t = refiner.tensors
    n, f = x.shape
    free = np.asarray(mask) > 0
    grid = np.arange(1, SEARCH_STEPS + 1, dtype=np.float64) / SEARCH_STEPS
    steps = len(grid)
    owners, candidates = [np.zeros(0, dtype=np.int64)], [np.zeros((0, f), dtype=x.dtype)]
    moves, n_moves = [np.zeros(0, dtype=np.int64)], 0
    numeric = np.broadcast_to(np.asarray(t.numeric) > 0, x.shape)
    for end in (np.broadcast_to(t.lower, x.shape), np.broadcast_to(t.upper, x.shape)):
        row, col = np.nonzero(free & numeric & (end != x))
        if not row.size:
            continue
        # every row moved towards the end on all the numeric columns that move at once, at every scale (each
        # column's value is what build gives a candidate that moves that column alone); each candidate is its
        # original with one of them
        cols = np.unique(col)
        moved = refiner.columns_moved(np.repeat(x, steps, axis=0), np.repeat(end, steps, axis=0),
                                      np.repeat(mask, steps, axis=0), np.tile(grid, n), cols)
        rep = np.repeat(np.arange(len(row)), steps)
        point = x[row[rep]]
        point[np.arange(len(rep)), col[rep]] = moved[row[rep] * steps + np.tile(np.arange(steps), len(row)),
                                                     np.searchsorted(cols, col)[rep]]
        candidates.append(point)
        owners.append(row[rep])
        moves.append(n_moves + rep)
        n_moves += len(row)
    for start, stop in t.groups:
        width = stop - start
        row = np.flatnonzero(free[:, start])
        if not row.size:
            continue
        rep = np.repeat(row, width)
        switched = np.tile(np.eye(width, dtype=x.dtype), (len(row), 1))
        other = np.any(switched != x[rep, start:stop], axis=1)
        rep, switched = rep[other], switched[other]
        point = x[rep]
        point[:, start:stop] = switched
        group = np.arange(start, stop)
        point[:, start:stop] = refiner.columns_moved(x[rep], point, mask[rep], np.ones(len(rep)), group)
        candidates.append(point)
        owners.append(rep)
        moves.append(n_moves + np.arange(len(rep)))
        n_moves += len(rep)
    return np.concatenate(owners), np.concatenate(candidates), np.concatenate(moves)


def _smallest_valid_moves(moves: Tuple[np.ndarray, np.ndarray, np.ndarray], proba: np.ndarray, targets: np.ndarray,
                          refiner: Refiner) -> np.ndarray:
    """Indices of the first candidate of each move that reaches its row's target (its smallest scale)."""
    owner, _, move = moves
    live = np.flatnonzero(refiner.criterion.met(proba, targets[owner]))
    _, first = np.unique(move[live], return_index=True)
    return live[first]


def _valid_sets_per_row(found: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]], x: np.ndarray,
                        targets: np.ndarray, refiner: Refiner) -> np.ndarray:
    """Per batch row, how many different sets of changed variables its valid counterfactuals among ``found``
    (``(row, cf, proba)`` triples) make."""
    owner = np.concatenate([f[0] for f in found])
    cf = np.concatenate([f[1] for f in found])
    proba = np.concatenate([f[2] for f in found])
    valid = refiner.criterion.met(proba, targets[owner])  # met implies reached
    changed = refiner.variable_costs(x[owner[valid]], cf[valid]) > 0
    keyed = np.concatenate([owner[valid][:, None], changed], axis=1)
    keyed = keyed[changed.any(axis=1)]
    distinct = keyed[_first_of_each(keyed), 0]
    return np.bincount(distinct.astype(np.int64), minlength=len(x))


def _distinct(owner: np.ndarray, cf: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each (row, counterfactual) pair."""
    return _first_of_each(np.concatenate([owner[:, None].astype(cf.dtype), cf], axis=1))


def _first_of_each(rows: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct row of a matrix, ascending.

    A stable sort on every column (``np.unique(axis=0)`` costs several times more on the few dozen rows of an
    explanation): equal rows end up next to each other, in their order, and the first of each run is kept.
    """
    order = np.lexsort(rows.T)
    ordered = rows[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    return np.sort(order[first])


def ranked(alternatives: Alternatives, n_rows: int, k: int) -> List[np.ndarray]:
    """Per row, the indices of up to ``k`` counterfactuals: the valid ones by increasing cost, each changing a set of
    variables that holds none of the sets already chosen (a counterfactual that adds changes to one already chosen
    is the same recourse with more to do), then, while fewer than ``k``, the cheapest of the others; or, when a row
    has no valid counterfactual, its first one alone (which then says it failed)."""
    out = []
    for row in range(n_rows):
        mine = np.flatnonzero(alternatives.owner == row)
        good = mine[alternatives.valid[mine]]
        if not good.size:
            out.append(mine[:1])
            continue
        good = good[np.argsort(alternatives.cost[good], kind="stable")]
        changed = alternatives.changed[good]
        # holds[a, b]: good[a] changes every variable good[b] changes (one comparison for the row, not one per pair)
        holds = np.all(changed[:, None, :] >= changed[None, :, :], axis=2)
        chosen: List[int] = []  # positions in good
        for a in range(len(good)):
            if len(chosen) == k:
                break
            if not holds[a, chosen].any():
                chosen.append(a)
        chosen += [a for a in range(len(good)) if a not in chosen][:k - len(chosen)]
        picked = good[chosen]
        out.append(picked[np.argsort(alternatives.cost[picked], kind="stable")])
    return out


def describe(alternatives: Alternatives, picks: np.ndarray, shape: Sequence[int], refiner: Refiner,
             feature_names: Optional[Sequence[str]]) -> Dict[str, Any]:
    """One row's counterfactuals and their diversity, as stored in the explanation.

    Returns
    -------
    ``{'X', 'class', 'proba', 'cost', 'valid', 'changed', 'mean_pairwise_distance', 'features_used'}``:
    the counterfactuals stacked in rank order (``X`` shaped ``(k,) + shape``), the names (or indices) of
    the variables each one changes, the mean cost between two of them (0 for fewer than two) and every
    variable any of them changes.
    """
    v = refiner.variables
    cf = alternatives.cf[picks]
    changed = alternatives.changed[picks]  # the variables each one changes from its row

    def name(j: int) -> Any:
        return _variable_name(int(v.starts[j]), bool(v.is_group[j]), feature_names)

    per_cf = [[name(j) for j in np.flatnonzero(row)] for row in changed]
    a, b = np.nonzero(np.arange(len(cf))[:, None] < np.arange(len(cf)))  # each pair once (np.triu_indices, faster)
    distance = float(np.mean(refiner.cost(cf[a], cf[b]))) if len(a) else 0.0
    return {"X": cf.reshape((len(cf),) + tuple(shape)), "class": alternatives.proba[picks].argmax(axis=1),
            "proba": alternatives.proba[picks], "cost": alternatives.cost[picks],
            "valid": alternatives.valid[picks], "changed": per_cf, "mean_pairwise_distance": distance,
            "features_used": [name(j) for j in np.flatnonzero(changed.any(axis=0))]}


def _variable_name(start: int, is_group: bool, feature_names: Optional[Sequence[str]]) -> Any:
    if feature_names is None:
        return start
    name = feature_names[start]
    return name.split("=", 1)[0] if is_group else name
