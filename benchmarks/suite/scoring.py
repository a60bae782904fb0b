"""Scores of every method's counterfactuals, computed once with the same classifier and autoencoder (and the
diversity comparison's, see :mod:`benchmarks.suite.diversity`)."""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from alibi_countergan import metrics
from alibi_countergan.constraints import FeatureSpace
from alibi_countergan.features import build_feature_space, onehot_groups
from alibi_countergan.ops import NUMPY_OPS
from benchmarks.suite import diversity
from benchmarks.suite.data import Dataset, load
from benchmarks.suite.methods import Method, methods
from benchmarks.suite.models import Models, load_autoencoder, load_classifier, predict

FIGURE_DIGITS = (7, 9)
"""The paper's Figure 2 shows counterfactuals of a 7 and a 9 (target 4)."""


def judging_space(ds: Dataset) -> FeatureSpace:
    """The constraints every method is judged against: the feature range, one-hot groups, immutable features."""
    flat = ds.X_train.reshape(len(ds.X_train), -1)
    channel = np.zeros(flat.shape[1], dtype=np.int64) if ds.is_image else None
    groups = onehot_groups(ds.cat_vars, True, flat.shape[1])
    return build_feature_space(flat, channel_index=channel, feature_shape=tuple(ds.X_train.shape[1:]),
                               feature_range=ds.feature_range, immutable=ds.immutable_columns(), monotone={},
                               groups=groups, grids={})


def repair_onehot(ds: Dataset, cf: np.ndarray) -> np.ndarray:
    """Each one-hot group of continuous output set to its largest entry (for a method that ignores categories)."""
    out = cf.copy()
    for start, n in ds.cat_vars.items():
        out[:, start:start + n] = NUMPY_OPS.one_hot_argmax(out[:, start:start + n])
    return out


def counterfactuals(method: Method, method_dir: Path, shape: Tuple[int, ...]) -> Optional[Dict[str, np.ndarray]]:
    """A method's rows, counterfactuals and ``found`` flags (None if it produced none).

    ``found`` is False where the method itself reports failure: a search that returned no
    counterfactual (its input stands in), or an explainer whose ``success`` is False.
    """
    if method.baseline:
        shards = sorted(method_dir.glob("shard-*.npz"))
        if not shards:
            return None
        parts: Dict[str, List[np.ndarray]] = {"rows": [], "cf": [], "found": [], "latency_ms": []}
        for path in shards:
            with np.load(path) as f:
                for key in parts:
                    parts[key].append(f[key])
        out = {k: np.concatenate(v) for k, v in parts.items()}
        order = np.argsort(out["rows"], kind="stable")
        return {k: v[order] for k, v in out.items()}
    path = method_dir / "counterfactuals.npz"
    if not path.is_file():
        return None
    with np.load(path) as f:
        rows = f["rows"]
        # a run from before success flags were saved: the classifier alone judges validity
        found = f["found"].astype(bool) if "found" in f.files else np.ones(len(rows), dtype=bool)
        return {"rows": rows, "cf": f["cf"].reshape((-1,) + shape), "found": found}


def variables(ds: Dataset) -> Dict[str, List[List[int]]]:
    """Column sets counted once each: the one-hot groups (``'categories'``) and the immutable variables."""
    groups = [list(range(start, start + n)) for start, n in sorted(ds.cat_vars.items())]
    immutable: Dict[str, List[int]] = {}
    for name, column in zip(ds.immutable, ds.immutable_columns()):
        immutable.setdefault(name.split("=", 1)[0], []).append(column)
    return {"categories": groups, "immutable": list(immutable.values())}


def _scores(ds: Dataset, classifier: Any, autoencoder: Any, space: FeatureSpace, rows: np.ndarray,
            cf: np.ndarray, found: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-row scores. A counterfactual is valid when the method reports success and the classifier agrees."""
    x = ds.X_test[rows]
    orig_proba, cf_proba = predict(classifier, x), predict(classifier, cf)
    counts = metrics.constraint_violations(x, cf, space)
    groups = variables(ds)
    return {
        "gain": metrics.prediction_gain(orig_proba, cf_proba, ds.target),
        "validity": metrics.validity(cf_proba, ds.target) & found,
        "realism": metrics.reconstruction_error(cf, predict(autoencoder, cf)),
        "l1": metrics.l1_distance(x, cf),
        "l0": metrics.l0_distance(x, cf),
        "categories": metrics.changed_variables(x, cf, groups["categories"]),
        "immutable": metrics.changed_variables(x, cf, groups["immutable"]),
        "violations": counts["total"],
        "target_proba": metrics.target_probability(cf_proba, ds.target),
    }


def summarise(scores: Dict[str, np.ndarray]) -> Dict[str, Dict[str, float]]:
    """Mean and 95% interval of each per-row score (Wilson intervals for shares).

    ``l1_valid`` and ``categories_valid`` are taken over the valid counterfactuals only: a search
    that gives up returns the input itself, whose distance of 0 would otherwise make failing look
    frugal. ``immutable`` counts the immutable variables a counterfactual changes (a one-hot group
    once), ``immutable_share`` the share of rows that change any.
    """
    valid = scores["validity"]
    out = {"l1_valid": metrics.mean_interval(scores["l1"][valid]).to_dict(),
           "categories_valid": metrics.mean_interval(scores["categories"][valid]).to_dict()}
    for name, values in scores.items():
        if name == "target_proba":
            continue
        if name == "validity":
            out[name] = metrics.proportion_interval(values).to_dict()
        elif name in ("immutable", "violations"):
            out[name] = metrics.mean_interval(values).to_dict()
            out[name + "_share"] = metrics.proportion_interval(values > 0).to_dict()
        else:
            out[name] = metrics.mean_interval(values).to_dict()
    return out


def score_dataset(task: Dict[str, Any]) -> Dict[str, Any]:
    """Scores of all methods of one data set: on the rows they all explained (``common``), and on all their rows."""
    ds = load(task["dataset"], Path(task["data_dir"]), seed=task["seed"], n_train=task["dataset_profile"]["n_train"])
    dataset_dir = Path(task["dataset_dir"])
    models = Models.from_dict(json.loads((dataset_dir / "prepare.json").read_text())["models"])
    classifier = load_classifier(ds, models.classifier)
    autoencoder, _ = load_autoencoder(ds, models.autoencoder)
    space = judging_space(ds)
    with np.load(dataset_dir / "rows.npz") as f:
        subset = f["subset"]
    shape = tuple(ds.X_test.shape[1:])
    result: Dict[str, Any] = {}
    figure: Dict[str, np.ndarray] = {}
    figure_rows = _figure_rows(ds, subset) if ds.is_image else None
    if figure_rows is not None:
        figure["rows"] = figure_rows
        figure["original"] = ds.X_test[figure_rows]
        figure["original_proba"] = predict(classifier, ds.X_test[figure_rows])[:, ds.target]
    found_by_method = {m.key: counterfactuals(m, dataset_dir / m.key, shape) for m in methods(ds.name)}
    # every method is compared on the same rows: the searches' subset, less any row a method lacks
    common = subset
    for found in found_by_method.values():
        if found is not None:
            common = np.intersect1d(common, found["rows"])
    for method in methods(ds.name):
        found = found_by_method[method.key]
        if found is None:
            result[method.key] = {"missing": True}
            continue
        rows, cf = found["rows"], found["cf"].astype(np.float32)
        entry: Dict[str, Any] = {}
        if method.baseline and ds.cat_vars:
            raw_onehot_invalid = metrics.constraint_violations(ds.X_test[rows], cf, space)["onehot"] > 0
            entry["raw_onehot_invalid_share"] = float(np.mean(raw_onehot_invalid)) if len(rows) else 0.0
            cf = repair_onehot(ds, cf)
        scores = _scores(ds, classifier, autoencoder, space, rows, cf, found["found"])
        keep = np.isin(rows, common)
        entry.update({"n": int(len(rows)), "all": summarise(scores), "n_common": int(keep.sum()),
                      "common": summarise({k: v[keep] for k, v in scores.items()}),
                      "found_share": float(np.mean(found["found"])) if len(rows) else 0.0})
        result[method.key] = entry
        if figure_rows is not None:
            where = {int(r): i for i, r in enumerate(rows)}
            if all(int(r) in where for r in figure_rows):
                index = [where[int(r)] for r in figure_rows]
                figure[f"{method.key}/cf"] = cf[index]
                figure[f"{method.key}/reconstruction"] = predict(autoencoder, cf[index])
                figure[f"{method.key}/proba"] = scores["target_proba"][index]
                figure[f"{method.key}/realism"] = scores["realism"][index]
    if figure:
        np.savez_compressed(dataset_dir / "figure.npz", **figure)
    diverse = diversity.score(ds, lambda rows: predict(classifier, rows), space, variables(ds), dataset_dir)
    return {"methods": result, "common_rows": common.tolist(), "diversity": diverse}


def _figure_rows(ds: Dataset, subset: np.ndarray) -> Optional[np.ndarray]:
    """The first 7 and the first 9 of the baselines' subset (or its first two rows when it has none)."""
    if len(subset) < 2:
        return None
    picked = []
    for digit in FIGURE_DIGITS:
        hits = [int(r) for r in subset if ds.y_test[r] == digit and int(r) not in picked]
        if hits:
            picked.append(hits[0])
    for r in subset:
        if len(picked) >= 2:
            break
        if int(r) not in picked:
            picked.append(int(r))
    return np.asarray(picked[:2], dtype=np.int64)
