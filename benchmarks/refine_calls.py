"""Predictor calls, time and quality of refined tabular explanations: a git revision's refinement against the
working tree's, on the same fitted generators.

Usage (from the repository root; about 10 minutes on two busy cores, most of it fitting)::

    python benchmarks/refine_calls.py [--before REV] [--steps 500] [--timed 300] [--work DIR] [--json out.json]

COMPAS and Pima (shipped with the package, split 80/20 with seed 0) are explained with two predictors each: a
PyTorch MLP (:mod:`alibi_countergan.classifiers`, white-box) and a scikit-learn ``GradientBoostingClassifier``
(``predict_proba``, black-box). Each explainer is fitted once (``--steps`` iterations, seed 0) and saved under
``--work``; the revision ``--before`` (its ``alibi_countergan`` package, extracted with ``git archive``) and the
working tree then each load the same saved explainers in a process of their own, so both refine the same
generator proposals. Two requests per case: an explicit target (COMPAS: 1, "will not reoffend", for the test
rows predicted 0; Pima: 0 for the rows predicted 1) and ``target_class='other'`` for every test row.

Figures per request kind, over the first ``--timed`` rows, each explained alone (``n_threads=1``, after a
warm-up), as a served or interactive user asks: validity (``success``), mean L1 over valid rows (the benchmark
suite's: raw units, :func:`alibi_countergan.metrics.l1_distance`), mean categories changed over valid rows, mean
cost (the refinement's own: L1 in spreads plus the category cost of each switched category), the share of rows
where the working tree's counterfactual costs no more than the revision's (both valid), the median and largest
number of predictor calls (calls of the explainer's ``_predict``, whatever their size), the mean number of rows
scored and the median time; and the time of the whole batch of rows at once.
"""

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BEFORE = "2b8e344"
"""The last revision with the three-stage refinement (repair, drop, shrink) only."""

CASES = [("compas", "mlp"), ("compas", "gbc"), ("pima", "mlp"), ("pima", "gbc")]
IMMUTABLE = {"compas": ["sex", "race", "age"], "pima": ["Pregnancies", "Age"]}
TARGET = {"compas": 1, "pima": 0}


def _data(name: str) -> Tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from alibi_countergan.datasets import load_compas, load_pima

    data = load_compas() if name == "compas" else load_pima()
    return (data,) + data.split(0.2, seed=0)


def prepare(work: Path, steps: int) -> None:
    """Train the classifiers and fit and save the explainers (skipped for those already saved in ``work``)."""
    import torch
    from sklearn.ensemble import GradientBoostingClassifier

    from alibi_countergan import CounteRGAN, classifiers, saving

    torch.set_num_threads(1)
    for name, model in CASES:
        case = work / f"{name}-{model}"
        if (case / "predictor.pkl").is_file():
            continue
        data, X_train, _, y_train, _ = _data(name)
        if model == "mlp":
            predictor: Any = classifiers.train(classifiers.mlp(X_train, 2, hidden=(32, 32)), X_train, y_train,
                                               epochs=20, seed=0)
        else:
            predictor = GradientBoostingClassifier(random_state=0).fit(X_train, y_train)
        explainer = CounteRGAN(predictor, (1, X_train.shape[1]), method="white-box" if model == "mlp" else "black-box",
                               cat_vars=data.cat_vars or None, feature_names=data.feature_names,
                               immutable_features=IMMUTABLE[name], train_steps=steps, seed=0, verbose=False)
        explainer.fit(X_train)
        saving.save(explainer, case / "explainer")
        if model == "mlp":
            torch.save(predictor.state_dict(), case / "mlp.pt")
        (case / "predictor.pkl").write_bytes(pickle.dumps(None if model == "mlp" else predictor))


def _predictor(case: Path, X_train: np.ndarray) -> Any:
    """The classifier of a prepared case (the MLP rebuilt and given its saved weights)."""
    predictor = pickle.loads((case / "predictor.pkl").read_bytes())
    if predictor is None:
        import torch

        from alibi_countergan import classifiers

        predictor = classifiers.mlp(X_train, 2, hidden=(32, 32))
        predictor.load_state_dict(torch.load(case / "mlp.pt"))
        predictor.eval()
    return predictor


def _requests(name: str, proba: np.ndarray) -> List[Tuple[str, np.ndarray, Any]]:
    """``(kind, test rows, target_class)`` of each request kind."""
    target = TARGET[name]
    return [(f"target {target}", np.flatnonzero(proba.argmax(axis=1) != target), target),
            ("other", np.arange(len(proba)), "other")]


def _count_calls(explainer: Any) -> List[int]:
    """Make ``explainer._predict`` record the rows of each call in the returned list. Not
    :func:`alibi_countergan.testing.counting_calls`: this worker also runs an older revision's package, which
    lacks it."""
    calls: List[int] = []
    predict = explainer._predict

    def counting(x: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(len(x))
        return predict(x, *args, **kwargs)

    explainer._predict = counting
    return calls


def _figures(explainer: Any, x: np.ndarray, target: Any, groups: List[List[int]], calls: List[int],
             timed: int) -> Dict[str, Any]:
    """The figures of one request kind (see the module)."""
    from alibi_countergan import metrics

    space = explainer.space_
    start = time.perf_counter()
    explainer.explain(x, target_class=target)
    batch_s = time.perf_counter() - start
    explainer.explain(x[:1], target_class=target)  # warm-up
    n_calls, n_rows, times, valid, cf = [], [], [], [], []
    rows = min(timed, len(x))
    for i in range(rows):
        calls.clear()
        start = time.perf_counter()
        e = explainer.explain(x[i:i + 1], target_class=target)
        times.append(time.perf_counter() - start)
        n_calls.append(len(calls))
        n_rows.append(sum(calls))
        valid.append(bool(e.success))
        cf.append(e.cf["X"].reshape(1, -1))
    x, ok, cfs = x[:rows], np.asarray(valid), np.concatenate(cf)
    cost = space.variables.costs(x, cfs, space.tensors_for(x.dtype)).sum(axis=1)
    return {"validity": float(ok.mean()), "l1": float(metrics.l1_distance(x, cfs)[ok].mean()),
            "categories": float(metrics.changed_variables(x, cfs, groups)[ok].mean()) if groups else 0.0,
            "cost": float(cost[ok].mean()), "calls_median": float(np.median(n_calls)),
            "calls_max": int(max(n_calls)), "rows_mean": float(np.mean(n_rows)),
            "ms_median": 1e3 * float(np.median(times)), "batch_s": batch_s, "valid": ok.tolist(),
            "cost_rows": cost.tolist()}


def measure(work: Path, timed: int) -> Dict[str, Any]:
    """Every figure of the package first on ``sys.path``, per case and request kind."""
    from alibi_countergan import saving

    out: Dict[str, Any] = {}
    for name, model in CASES:
        case = work / f"{name}-{model}"
        data, X_train, X_test, _, _ = _data(name)
        explainer = saving.load(case / "explainer", _predictor(case, X_train))
        explainer.set_params(n_threads=1)
        proba = explainer._predict(X_test, None, None)
        calls = _count_calls(explainer)
        groups = [list(range(s, s + n)) for s, n in sorted(data.cat_vars.items())]
        for kind, rows, target in _requests(name, proba):
            out[f"{name}-{model}/{kind}"] = _figures(explainer, X_test[rows], target, groups, calls, timed)
    return out


def _run(package_root: Path, work: Path, timed: int) -> Dict[str, Any]:
    """:func:`measure` in a process of its own, with ``package_root``'s ``alibi_countergan`` first."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(package_root), "--work", str(work),
               "--timed", str(timed)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=str(package_root))
    result: Dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def table(before: Dict[str, Any], after: Dict[str, Any], rev: str) -> str:
    """The markdown table of both runs."""
    lines = ["| case | request | refinement | validity | L1 (valid) | categories | cost | cost <= before | "
             "calls median (max) | rows scored | ms median | batch s |", "|" + "---|" * 12]
    for key in before:
        case, kind = key.split("/")
        b, a = before[key], after[key]
        both = np.asarray(b["valid"]) & np.asarray(a["valid"])
        no_worse = np.asarray(a["cost_rows"])[both] <= np.asarray(b["cost_rows"])[both] + 1e-6
        for label, r, share in ((rev, b, ""), ("working tree", a, f"{no_worse.mean():.3f}")):
            lines.append(f"| {case} | {kind} | {label} | {r['validity']:.3f} | {r['l1']:.4f} | {r['categories']:.3f} "
                         f"| {r['cost']:.4f} | {share} | {r['calls_median']:g} ({r['calls_max']}) | "
                         f"{r['rows_mean']:.0f} | {r['ms_median']:.2f} | {r['batch_s']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="git revision of the refinement to compare against")
    parser.add_argument("--steps", type=int, default=500, help="training iterations of each explainer")
    parser.add_argument("--timed", type=int, default=300, help="single-row explanations timed per request kind")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "cache" / "refine_calls")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        sys.path.insert(0, str(args.worker))
        print(json.dumps(measure(args.work, args.timed)))
        return
    sys.path.insert(0, str(REPO))
    args.work.mkdir(parents=True, exist_ok=True)
    prepare(args.work, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", args.before, "alibi_countergan"], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        before = _run(Path(tmp), args.work, args.timed)
    after = _run(REPO, args.work, args.timed)
    print(table(before, after, args.before))
    if args.json is not None:
        args.json.write_text(json.dumps({"before": before, "after": after}))


if __name__ == "__main__":
    main()
