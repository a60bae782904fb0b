"""The diversity comparison: ``k = 3`` counterfactuals per instance, CounteRGAN against DiCE, on the same rows.

CounteRGAN explains each row with ``explain(x, target_class=..., n_counterfactuals=3)``, white-box and
black-box, with the fits of the main table that keep the data set's immutable features (COMPAS's
``-immutable`` rows, Pima's main rows). DiCE (:mod:`benchmarks.suite.dice`, methods ``'random'`` and
``'genetic'``) gets the same classifier, rows, target and immutable features. Every method explains one row
per call with one thread, on a random subset of the searches' rows (:func:`diverse_rows`).

Measures (:func:`score_method`), all in the encoded space the other tables use: validity (the share of the
returned counterfactuals that the classifier assigns to the target), the valid distinct alternatives per
instance, L1 and categories changed over those alternatives, the share of them that change an immutable
variable, the mean pairwise distance between a row's alternatives, and the time per instance. The
pairwise distance is CounteRGAN's own ``counterfactuals['mean_pairwise_distance']`` measure, computed here
with the package's function (:func:`cost_function`: the change of each numerical feature in units of its
standard deviation in the training rows, plus 1 per switched category) for every method alike; for
CounteRGAN's rows it is checked against the value its explanation reports.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from alibi_countergan import metrics
from alibi_countergan.constraints import FeatureSpace
from benchmarks.suite.data import Dataset

K = 3
"""Counterfactuals asked for per instance."""
FOLDER = "diversity"
CostFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class DiverseMethod:
    """One column of the diversity table.

    Attributes
    ----------
    key
        Folder and JSON name.
    label
        Column title.
    source
        CounteRGAN: the key of the main table's method whose fitted explainer is used.
    dice
        DiCE: its method (``'random'`` or ``'genetic'``).
    """

    key: str
    label: str
    source: Optional[str] = None
    dice: Optional[str] = None


def diverse_methods(dataset: str) -> List[DiverseMethod]:
    """The methods of a data set's diversity table (none for MNIST)."""
    if dataset == "mnist":
        return []
    suffix = "-immutable" if dataset == "compas" else ""
    return [DiverseMethod("countergan-wb", "CounteRGAN, k=3", source="countergan-wb" + suffix),
            DiverseMethod("countergan-bb", "CounteRGAN black-box, k=3", source="countergan-bb" + suffix),
            DiverseMethod("dice-random", "DiCE random", dice="random"),
            DiverseMethod("dice-genetic", "DiCE genetic", dice="genetic")]


def diverse_rows(subset: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The rows of the comparison: ``n`` of the searches' rows, drawn with their own seeded generator."""
    if len(subset) <= n:
        return np.sort(np.asarray(subset))
    return np.sort(np.random.default_rng([seed, K]).choice(subset, n, replace=False))


def output_path(dataset_dir: Path, key: str) -> Path:
    """Where a method's counterfactuals of the comparison are saved."""
    return dataset_dir / FOLDER / key / "counterfactuals.npz"


def save(dataset_dir: Path, key: str, rows: np.ndarray, owner: np.ndarray, cf: np.ndarray, latency_ms: np.ndarray,
         status: List[str], reported_distance: Optional[np.ndarray] = None,
         latency_k1_ms: Optional[np.ndarray] = None) -> None:
    """Save a method's counterfactuals: ``cf[i]`` belongs to ``rows[owner[i]]``; one time and status per row (and,
    for CounteRGAN, the distance its explanation reports and the time of a ``k = 1`` explanation of the row)."""
    path = output_path(dataset_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    missing = np.full(len(rows), np.nan)
    np.savez_compressed(path, rows=rows, owner=owner, cf=cf.astype(np.float32), latency_ms=latency_ms,
                        status=np.asarray(status, dtype=str),
                        reported_distance=missing if reported_distance is None else reported_distance,
                        latency_k1_ms=missing if latency_k1_ms is None else latency_k1_ms)


def explain_countergan(explainer: Any, x: np.ndarray, target: int, warmup: np.ndarray) -> Dict[str, Any]:
    """``explain(row, target_class=target, n_counterfactuals=K)`` on each row, timed one call each; before it, the
    same row with ``n_counterfactuals=1`` (timed too: what ``K`` alternatives cost over one explanation)."""
    for _ in range(3):  # warm-up (traces and allocates once)
        explainer.explain(warmup.reshape((1,) + warmup.shape), target_class=target, n_counterfactuals=K)
        explainer.explain(warmup.reshape((1,) + warmup.shape), target_class=target)
    owner, found, times, reported, single = [], [], [], [], []
    for i, row in enumerate(x):
        start = time.perf_counter()
        explainer.explain(row.reshape((1,) + row.shape), target_class=target)
        single.append(1000 * (time.perf_counter() - start))
        start = time.perf_counter()
        explanation = explainer.explain(row.reshape((1,) + row.shape), target_class=target, n_counterfactuals=K)
        times.append(1000 * (time.perf_counter() - start))
        described = explanation.data["counterfactuals"]
        described = described[0] if isinstance(described, list) else described
        cf = np.asarray(described["X"], dtype=np.float32).reshape(len(described["X"]), -1)
        owner.append(np.full(len(cf), i, dtype=np.int64))
        found.append(cf)
        reported.append(float(described["mean_pairwise_distance"]))
    return {"owner": np.concatenate(owner), "cf": np.concatenate(found), "latency_ms": np.asarray(times),
            "status": ["ok"] * len(x), "reported_distance": np.asarray(reported), "latency_k1_ms": np.asarray(single)}


def cost_function(space: FeatureSpace) -> CostFn:
    """The cost between two batches of rows that CounteRGAN's ``mean_pairwise_distance`` uses.

    :meth:`alibi_countergan.constraints.Variables.costs` summed over the variables, in float64:
    ``|change| / spread`` for a numerical feature (spread: its standard deviation in the training rows) and
    the category cost (1) for a switched one-hot group.
    """
    variables, tensors = space.variables, space.tensors_for(np.float64)

    def cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(variables.costs(a.astype(np.float64), b.astype(np.float64), tensors).sum(axis=1))

    return cost


def mean_pairwise(cf: np.ndarray, cost: CostFn) -> float:
    """The mean cost between two of a row's counterfactuals (NaN for fewer than two)."""
    a, b = np.triu_indices(len(cf), k=1)
    return float(np.mean(cost(cf[a], cf[b]))) if a.size else float("nan")


def _per_row(owner: np.ndarray, cf: np.ndarray, valid: np.ndarray, cost: CostFn, n_rows: int) -> Dict[str, Any]:
    """Per row: the distinct valid counterfactuals (indices into ``cf``), their mean pairwise distance, and the
    mean pairwise distance of everything returned."""
    keep: List[np.ndarray] = []
    distinct, pairwise, returned_pairwise = np.zeros(n_rows, np.int64), np.full(n_rows, np.nan), np.full(n_rows, np.nan)
    for i in range(n_rows):
        mine = np.flatnonzero(owner == i)
        good = mine[valid[mine]]
        if good.size:
            _, first = np.unique(cf[good], axis=0, return_index=True)
            good = good[np.sort(first)]
        keep.append(good)
        distinct[i] = good.size
        pairwise[i] = mean_pairwise(cf[good], cost)
        returned_pairwise[i] = mean_pairwise(cf[mine], cost)
    return {"keep": np.concatenate(keep) if keep else np.zeros(0, np.int64), "distinct": distinct,
            "pairwise": pairwise, "returned_pairwise": returned_pairwise}


def score_method(ds: Dataset, predict: Callable[[np.ndarray], np.ndarray], cost: CostFn,
                 variables: Dict[str, List[List[int]]], saved: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """The measures of one method's saved counterfactuals (see the module), with their 95% intervals."""
    rows, owner, cf = saved["rows"], saved["owner"].astype(np.int64), saved["cf"]
    n = len(rows)
    x = ds.X_test[rows][owner]
    valid = predict(cf).argmax(axis=1) == ds.target if len(cf) else np.zeros(0, dtype=bool)
    per_row = _per_row(owner, cf, valid, cost, n)
    keep = per_row["keep"]
    xk, ck = x[keep], cf[keep]
    categories = metrics.changed_variables(xk, ck, variables["categories"]) if variables["categories"] else \
        np.zeros(len(keep))
    immutable = metrics.changed_variables(xk, ck, variables["immutable"]) if variables["immutable"] else \
        np.zeros(len(keep))
    pairwise = per_row["pairwise"]
    latency = np.asarray(saved["latency_ms"], dtype=np.float64)
    out: Dict[str, Any] = {
        "n_rows": n, "k": K,
        "returned_per_row": metrics.mean_interval(np.bincount(owner, minlength=n)).to_dict(),
        "validity": metrics.proportion_interval(valid).to_dict(),
        "valid_distinct_per_row": metrics.mean_interval(per_row["distinct"]).to_dict(),
        "rows_with_k": metrics.proportion_interval(per_row["distinct"] >= K).to_dict(),
        "rows_without": metrics.proportion_interval(per_row["distinct"] == 0).to_dict(),
        "l1_valid": metrics.mean_interval(metrics.l1_distance(xk, ck)).to_dict(),
        "categories_valid": metrics.mean_interval(categories).to_dict(),
        "immutable_share": metrics.proportion_interval(immutable > 0).to_dict(),
        "pairwise": metrics.mean_interval(pairwise[np.isfinite(pairwise)]).to_dict(),
        "pairwise_zero_filled": metrics.mean_interval(np.nan_to_num(pairwise, nan=0.0)).to_dict(),
        "latency_median_ms": metrics.median(latency), "latency_ms": metrics.mean_interval(latency).to_dict(),
        "status": {s: int(np.sum(saved["status"] == s)) for s in sorted(set(saved["status"].tolist()))},
    }
    single = np.asarray(saved["latency_k1_ms"], dtype=np.float64)
    if len(single) and np.isfinite(single).all():
        out["latency_k1_median_ms"] = metrics.median(single)
        out["k_over_1_median"] = metrics.median(latency / single)
    reported = np.asarray(saved["reported_distance"], dtype=np.float64)
    if np.isfinite(reported).any():
        computed = np.nan_to_num(per_row["returned_pairwise"], nan=0.0)
        out["distance_check_max_abs"] = float(np.nanmax(np.abs(computed - reported)))
    return out


def score(ds: Dataset, predict: Callable[[np.ndarray], np.ndarray], space: FeatureSpace,
          variables: Dict[str, List[List[int]]], dataset_dir: Path) -> Dict[str, Any]:
    """Every method of the comparison, on the rows they all explained (an empty dict for MNIST)."""
    found: Dict[str, Dict[str, np.ndarray]] = {}
    for m in diverse_methods(ds.name):
        path = output_path(dataset_dir, m.key)
        if path.is_file():
            with np.load(path) as f:
                found[m.key] = {k: f[k] for k in f.files}
    if not found:
        return {}
    common = np.asarray(next(iter(found.values()))["rows"])
    for saved in found.values():
        common = np.intersect1d(common, saved["rows"])
    cost = cost_function(space)
    methods: Dict[str, Any] = {}
    for m in diverse_methods(ds.name):
        if m.key not in found:
            methods[m.key] = {"missing": True}
            continue
        methods[m.key] = score_method(ds, predict, cost, variables, _restrict(found[m.key], common))
    return {"k": K, "rows": common.tolist(), "methods": methods}


def _restrict(saved: Dict[str, np.ndarray], rows: np.ndarray) -> Dict[str, np.ndarray]:
    """A method's saved results on some of its rows only (owners renumbered)."""
    keep_rows = np.isin(saved["rows"], rows)
    new_index = np.cumsum(keep_rows) - 1
    keep_cf = keep_rows[saved["owner"]]
    out = {k: saved[k][keep_rows] for k in ("rows", "latency_ms", "status", "reported_distance", "latency_k1_ms")}
    out.update(owner=new_index[saved["owner"][keep_cf]], cf=saved["cf"][keep_cf])
    return out
