"""Several different counterfactuals per instance, each minimal, ranked by cost.

The generator is trained with random subsets of features frozen (``random_mask_rate``), so it can
propose a counterfactual that avoids any given variable. :func:`diverse_counterfactuals` uses that:
for each variable the first counterfactual changes, the generator is asked again with that variable
frozen, and every proposal goes through the same refinement (:class:`~alibi_countergan.refine.Refiner`)
as the first one. All rows and all frozen variables go through one generator pass and one refinement,
so the cost is a few more batched predictor calls, whatever the batch size: one more for a small batch of
tabular rows, whose alternatives fit in the refinement's one-call search, which also offers, at no further
call, the cheapest valid candidate of every subset of each proposal's changes. The valid, distinct results
are chosen by cost, each changing a set of variables that holds none of those already chosen, and then,
while fewer than asked, the cheapest of the rest.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from alibi_countergan.refine import Refiner, RegenerateFn


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
                            refine: bool = True, x_proba: Optional[np.ndarray] = None) -> Alternatives:
    """The first counterfactuals and, for each variable they change, the refined one that leaves it alone.

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

    Returns
    -------
    Every counterfactual found (the first ones included), duplicates removed.
    """
    v = refiner.variables
    changed = refiner.variable_costs(x, cf) > 0
    rows, var = np.nonzero(changed)
    owner, found, found_proba = [np.arange(len(x))], [cf], [proba]
    if rows.size:
        frozen = mask[rows] * (v.of_column[None, :] != var[:, None])
        local, alt, alt_proba = _alternatives(x[rows], targets[rows], frozen, refiner, generate, refine,
                                              None if x_proba is None else x_proba[rows])
        owner.append(rows[local])
        found.append(alt)
        found_proba.append(alt_proba)
    all_owner, all_cf, all_proba = np.concatenate(owner), np.concatenate(found), np.concatenate(found_proba)
    keep = _distinct(all_owner, all_cf)
    all_owner, all_cf, all_proba = all_owner[keep], all_cf[keep], all_proba[keep]
    valid = refiner.criterion.reached(all_proba, targets[all_owner])
    costs = refiner.variable_costs(x[all_owner], all_cf)
    return Alternatives(owner=all_owner, cf=all_cf, proba=all_proba, cost=costs.sum(axis=1), valid=valid,
                        changed=costs > 0)


def _alternatives(x: np.ndarray, targets: np.ndarray, mask: np.ndarray, refiner: Refiner, generate: RegenerateFn,
                  refine: bool, x_proba: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The generator's counterfactuals under ``mask``, refined as the first ones are: ``(row, cf, proba)``.

    Where the batch fits in the one-call search (:meth:`Refiner.search`), every subset's cheapest candidate that
    reaches the target comes with each row's best one (several alternatives per proposal, at no further call), and
    the rows the search leaves over take the stages; otherwise the stages alone, one counterfactual per row.
    """
    proposal = generate(x, targets, mask)
    searched = refiner.search(x, proposal, targets[:, None], mask, pool=True, accept_grown=True) if refine else None
    rows = np.arange(len(x))
    if searched is None:
        proposal_proba = refiner.predict(proposal)
        if not refine:
            return rows, proposal, proposal_proba
        return (rows,) + refiner.refine(x, proposal, targets, mask, proposal_proba, x_proba)
    cf, proba = searched.cf, searched.proba
    todo = np.flatnonzero(~searched.done)
    if todo.size:
        cf[todo], proba[todo] = refiner.refine(x[todo], cf[todo], targets[todo], mask[todo], proba[todo],
                                               searched.x_proba[todo])
    if searched.pool is None:
        return rows, cf, proba
    pool_rows, pool_cf, pool_proba = searched.pool
    return (np.concatenate([rows, pool_rows]), np.concatenate([cf, pool_cf]),
            np.concatenate([proba, pool_proba]))


def _distinct(owner: np.ndarray, cf: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each (row, counterfactual) pair."""
    keyed = np.concatenate([owner[:, None].astype(cf.dtype), cf], axis=1)
    _, first = np.unique(keyed, axis=0, return_index=True)
    return np.sort(first)


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
        chosen: List[int] = []
        for i in good:
            if len(chosen) == k:
                break
            changed = alternatives.changed[i]
            if not any(np.all(changed >= alternatives.changed[j]) for j in chosen):
                chosen.append(int(i))
        chosen += [int(i) for i in good if int(i) not in chosen][:k - len(chosen)]
        out.append(np.array(sorted(chosen, key=lambda i: alternatives.cost[i])))
    return out


def describe(alternatives: Alternatives, picks: np.ndarray, x_row: np.ndarray, shape: Sequence[int],
             refiner: Refiner, feature_names: Optional[Sequence[str]]) -> Dict[str, Any]:
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
    changed = refiner.variable_costs(np.broadcast_to(x_row, cf.shape), cf) > 0
    names = [_variable_name(int(s), v.is_group[i], feature_names) for i, s in enumerate(v.starts)]
    per_cf = [[names[j] for j in np.flatnonzero(row)] for row in changed]
    pairs = [(a, b) for a in range(len(cf)) for b in range(a + 1, len(cf))]
    distance = float(np.mean([refiner.cost(cf[a:a + 1], cf[b:b + 1])[0] for a, b in pairs])) if pairs else 0.0
    return {"X": cf.reshape((len(cf),) + tuple(shape)), "class": alternatives.proba[picks].argmax(axis=1),
            "proba": alternatives.proba[picks], "cost": alternatives.cost[picks],
            "valid": alternatives.valid[picks], "changed": per_cf, "mean_pairwise_distance": distance,
            "features_used": sorted({n for row in per_cf for n in row}, key=names.index)}


def _variable_name(start: int, is_group: bool, feature_names: Optional[Sequence[str]]) -> Any:
    if feature_names is None:
        return start
    name = feature_names[start]
    return name.split("=", 1)[0] if is_group else name
