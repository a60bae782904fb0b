"""One benchmark step, in a process of its own: ``python -m benchmarks.suite.worker TASK.json``.

A process per step keeps the measures clean: each fit and each explanation phase has its own
peak memory, thread settings and warm-up, and alibi's TF1 explainers never share a process with
eager TensorFlow code (they also run in a private ``tf.Graph`` and session).

Steps (``task['kind']``):

- ``prepare``: train or load the classifier and the autoencoder, choose the rows to explain.
- ``fit``: fit a GAN-based explainer (or alibi's CFRL) and save it.
- ``explain-batch``: load it, explain all rows in one call (batch latency), save the counterfactuals.
- ``explain-single``: load it, time many warm single-instance calls (single-thread).
- ``paired-latency``: load every amortised method's explainer of a data set (CounteRGAN's and CFRL's) into one
  process and time them on the same rows in turn (single-thread), so that their ratio survives a drifting host.
- ``baseline``: run alibi's ``Counterfactual`` or ``CounterfactualProto`` on a shard of the subset.
- ``diversity``: CounteRGAN's ``n_counterfactuals=3`` (white-box and black-box) and DiCE (``'random'`` and
  ``'genetic'``) on the diversity rows (see :mod:`benchmarks.suite.diversity`).
- ``evaluate``: score every method's counterfactuals with the same classifier and autoencoder.
"""

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import numpy as np

from benchmarks.suite import jsonfile, system
from benchmarks.suite.data import Dataset, load
from benchmarks.suite.methods import (
    CFPROTO_K_IMAGES,
    CFPROTO_SETTINGS,
    WACHTER_SETTINGS,
    Method,
    countergan_kwargs,
    methods,
)
from benchmarks.suite.models import Models, ensure_models
from benchmarks.suite.settings import data_file


def _dataset(task: Dict[str, Any]) -> Dataset:
    return load(task["dataset"], Path(task["data_dir"]), seed=task["seed"], n_train=task["dataset_profile"]["n_train"])


def _method(ds: Dataset, key: str) -> Method:
    for m in methods(ds.name):
        if m.key == key:
            return m
    raise ValueError(f"Unknown method {key!r} for {ds.name}.")


def _rows(task: Dict[str, Any]) -> Dict[str, np.ndarray]:
    with np.load(Path(task["dataset_dir"]) / "rows.npz") as f:
        return {k: f[k] for k in f.files}


def _models(task: Dict[str, Any]) -> Models:
    return Models.from_dict(json.loads((Path(task["dataset_dir"]) / "prepare.json").read_text())["models"])


# ---------------------------------------------------------------------------------------------
# prepare
# ---------------------------------------------------------------------------------------------


def prepare(task: Dict[str, Any]) -> Dict[str, Any]:
    """Models (cached), the rows to explain, the baseline subset and the reference realism errors."""
    from alibi_countergan.metrics import reconstruction_error
    from benchmarks.suite.models import load_autoencoder, load_classifier, predict

    ds = _dataset(task)
    dp = task["dataset_profile"]
    seed = task["seed"]
    data_path = data_file(Path(task["data_dir"]), ds.name)
    models = ensure_models(ds, Path(task["cache_dir"]), data_path, dp["classifier_epochs"], dp["autoencoder_epochs"],
                           seed)
    classifier = load_classifier(ds, models.classifier)
    autoencoder, _ = load_autoencoder(ds, models.autoencoder)
    proba = predict(classifier, ds.X_test)
    rng = np.random.default_rng(seed)
    if ds.is_image:
        rows = np.arange(len(ds.X_test))  # the paper's protocol: every test image, target 4
    else:
        rows = np.flatnonzero(proba.argmax(1) != ds.target)  # recourse: every row predicted unfavourable
    if dp["n_test"] is not None and dp["n_test"] < len(rows):
        rows = np.sort(rng.choice(rows, dp["n_test"], replace=False))
    subset = np.sort(rng.choice(rows, min(dp["n_baseline"], len(rows)), replace=False))
    single = rng.choice(rows, dp["single_calls"], replace=dp["single_calls"] > len(rows))
    outside = np.setdiff1d(np.arange(len(ds.X_test)), subset)
    warmup = int(outside[0]) if len(outside) else int(rows[0])
    np.savez(Path(task["dataset_dir"]) / "rows.npz", rows=rows, subset=subset, single=single,
             warmup=np.array([warmup]))

    test_error = reconstruction_error(ds.X_test, predict(autoencoder, ds.X_test))
    lower, upper = (np.broadcast_to(b, (1,) + ds.X_test.shape[1:]) for b in ds.feature_range)
    noise = (lower + (upper - lower) * rng.random((len(ds.X_test),) + ds.X_test.shape[1:])).astype(np.float32)
    noise_error = reconstruction_error(noise, predict(autoencoder, noise))
    target_rows = ds.y_test == ds.target
    accuracy = float(np.mean(proba.argmax(1) == ds.y_test))
    result = {
        "models": models.to_dict(),
        "accuracy": accuracy,
        "n_train": int(len(ds.X_train)),
        "n_test": int(len(ds.X_test)),
        "n_rows": int(len(rows)),
        "n_subset": int(len(subset)),
        "predicted_target_share": float(np.mean(proba.argmax(1) == ds.target)),
        "reference_realism": {
            "test": float(test_error.mean()),
            "test_half_width": float(1.96 * test_error.std(ddof=1) / np.sqrt(len(test_error))),
            "test_target_class": float(test_error[target_rows].mean()) if target_rows.any() else None,
            "noise": float(noise_error.mean()),
        },
    }
    jsonfile.write(Path(task["dataset_dir"]) / "prepare.json", result)  # what the later steps read
    return result


# ---------------------------------------------------------------------------------------------
# GAN-based methods
# ---------------------------------------------------------------------------------------------


def _predictor(ds: Dataset, models: Models, method: Method, backend: str) -> Any:
    """The classifier as the method sees it: a model of the backend's framework (white-box) or a function."""
    from benchmarks.suite.models import keras_function, load_classifier, torch_classifier

    keras_model = load_classifier(ds, models.classifier)
    if not method.white_box:
        return keras_function(keras_model)
    if backend == "tensorflow":
        return keras_model
    return torch_classifier(ds, models.classifier)


def fit(task: Dict[str, Any]) -> Dict[str, Any]:
    """Fit a GAN-based explainer (or CFRL) on the training rows, time it, save it."""
    from alibi_countergan import CounteRGAN
    from alibi_countergan.saving import save

    ds = _dataset(task)
    method = _method(ds, task["method"])
    if method.cfrl:
        return _fit_cfrl(task, ds)
    predictor = _predictor(ds, _models(task), method, task["backend"])
    kwargs = countergan_kwargs(method, ds, task["backend"], task["seed"], task["dataset_profile"]["train_steps"])
    explainer = CounteRGAN(predictor, ds.shape, **kwargs)
    rss_before = system.rss_mb()
    system.reset_peak()
    start = time.perf_counter()
    explainer.fit(ds.X_train)
    fit_s = time.perf_counter() - start
    peak = system.peak_rss_mb()
    save(explainer, Path(task["method_dir"]) / "explainer")
    last = explainer.history_[-1] if explainer.history_ else {}
    return {"fit_s": fit_s, "peak_rss_mb": peak, "rss_before_mb": rss_before, "train_steps": explainer.train_steps,
            "iteration_s": fit_s / explainer.train_steps, "params": explainer.meta["params"],
            "final_losses": last}


def _fit_cfrl(task: Dict[str, Any], ds: Dataset) -> Dict[str, Any]:
    """Train CFRL's autoencoder and CFRL itself (alibi's example settings), time them, save the explainer."""
    from alibi.saving import save_explainer

    from benchmarks.suite import cfrl
    from benchmarks.suite.models import keras_function, load_classifier

    dp = task["dataset_profile"]
    if dp["cfrl_train_steps"] is None:
        raise ValueError(f"the profile gives no cfrl_train_steps for {ds.name}.")
    predict_fn = keras_function(load_classifier(ds, _models(task).classifier))
    rss_before = system.rss_mb()
    system.reset_peak()
    explainer, info = cfrl.fit(ds, predict_fn, int(dp["cfrl_train_steps"]), int(dp["cfrl_autoencoder_epochs"]),
                               task["seed"])
    peak = system.peak_rss_mb()
    save_explainer(explainer, str(Path(task["method_dir"]) / "explainer"))
    return {**info, "peak_rss_mb": peak, "rss_before_mb": rss_before, "iteration_s": info["rl_s"] / info["train_steps"],
            "params": {"coeff_sparsity": cfrl.COEFF_SPARSITY, "coeff_consistency": cfrl.COEFF_CONSISTENCY,
                       "hidden_dim": cfrl.HIDDEN_DIM, "latent_dim": cfrl.LATENT_DIM, "backend": "pytorch",
                       "immutable_features": list(explainer.params["immutable_features"])}}


class _CfrlExplainer:
    """A loaded CFRL explainer behind CounteRGAN's call: encoded rows in, encoded counterfactuals out."""

    def __init__(self, ds: Dataset, models: Models, method_dir: Path) -> None:
        from alibi.saving import load_explainer

        from benchmarks.suite import cfrl
        from benchmarks.suite.models import keras_function, load_classifier

        self.layout = cfrl.Layout.of(ds)
        predictor = cfrl.OriginalPredictor(self.layout, keras_function(load_classifier(ds, models.classifier)))
        # alibi saves CFRL's networks as whole pickled modules, which torch >= 2.6 loads only with
        # weights_only=False; these are the files the fit step of this run wrote
        previous = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
        os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
        try:
            self.explainer = load_explainer(str(method_dir / "explainer"), predictor=predictor)
        finally:
            if previous is None:
                del os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"]
            else:
                os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = previous

    def explain(self, x: np.ndarray, target_class: int) -> Tuple[np.ndarray, np.ndarray]:
        from benchmarks.suite import cfrl

        cf = cfrl.explain(self.explainer, self.layout, x, target_class)
        return cf, np.ones(len(x), dtype=bool)  # CFRL always returns a counterfactual; the classifier judges it


ExplainFn = Callable[[np.ndarray, int], Tuple[np.ndarray, np.ndarray]]


def _load_explainer(task: Dict[str, Any], calls: Optional[List[int]] = None) -> Tuple[Dataset, ExplainFn]:
    """The data set and the method's ``explain(x, target) -> (counterfactuals, success flags)``. With ``calls``, a
    CounteRGAN method appends the rows of each of its predictor calls to that list (CFRL's calls are not counted)."""
    from alibi_countergan.saving import load as load_explainer

    ds = _dataset(task)
    method = _method(ds, task["method"])
    if method.cfrl:
        return ds, _CfrlExplainer(ds, _models(task), Path(task["method_dir"])).explain
    predictor = _predictor(ds, _models(task), method, task["backend"])
    fitted_dir = Path(task["method_dir"]) if method.fitted_by is None else \
        Path(task["dataset_dir"]) / method.fitted_by
    explainer = load_explainer(fitted_dir / "explainer", predictor)
    if calls is not None:  # the predictor as the explainer calls it (a model of its framework goes through a backend)
        from alibi_countergan.testing import counting_calls

        explainer._predict = counting_calls(explainer._predict, calls)  # type: ignore[method-assign]

    def explain(x: np.ndarray, target_class: int) -> Tuple[np.ndarray, np.ndarray]:
        explanation = explainer.explain(x, target_class=target_class, refine=method.refine)
        return explanation.cf["X"], np.atleast_1d(np.asarray(explanation.success, dtype=bool))

    return ds, explain


def explain_batch(task: Dict[str, Any]) -> Dict[str, Any]:
    """All rows in one ``explain`` call (after a warm-up), the counterfactuals and their success flags."""
    rss_start = system.rss_mb()
    ds, explain = _load_explainer(task)
    rows = _rows(task)["rows"]
    x = ds.X_test[rows]
    explain(x[:1], ds.target)  # warm-up: traces and allocates once
    explain(x[:256], ds.target)
    rss_loaded = system.rss_mb()
    system.reset_peak()
    start = time.perf_counter()
    cf, found = explain(x, ds.target)
    batch_s = time.perf_counter() - start
    peak = system.peak_rss_mb()
    np.savez_compressed(Path(task["method_dir"]) / "counterfactuals.npz", rows=rows, cf=cf.astype(np.float32),
                        found=found)
    return {"batch_s": batch_s, "n": int(len(rows)), "peak_rss_mb": peak, "rss_loaded_mb": rss_loaded,
            "rss_start_mb": rss_start, "found": int(found.sum())}


def explain_single(task: Dict[str, Any]) -> Dict[str, Any]:
    """Single-instance latency: the median of many warm calls, each on one instance; for CounteRGAN, the predictor
    calls each of them made (counting appends a number to a list per call: nothing a millisecond would show)."""
    calls: List[int] = []
    ds, explain = _load_explainer(task, calls)
    rows = _rows(task)
    single = rows["single"]
    for r in single[:10]:  # warm-up
        explain(ds.X_test[r:r + 1], ds.target)
    times, per_explanation = [], []
    for r in single:
        x = ds.X_test[r:r + 1]
        before = len(calls)
        start = time.perf_counter()
        explain(x, ds.target)
        times.append(time.perf_counter() - start)
        per_explanation.append(len(calls) - before)
    ms = 1000 * np.asarray(times)
    result = {"latency_ms": ms.tolist(), "median_ms": float(np.median(ms)), "mean_ms": float(ms.mean()),
              "p90_ms": float(np.percentile(ms, 90)), "calls": int(len(ms)), "peak_rss_mb": system.peak_rss_mb()}
    if _method(ds, task["method"]).cfrl:
        return result
    counted = np.asarray(per_explanation)
    return {**result, "predictor_calls_median": float(np.median(counted)),
            "predictor_calls_mean": float(counted.mean()), "predictor_calls_max": int(counted.max())}


def paired_latency(task: Dict[str, Any]) -> Dict[str, Any]:
    """Single-instance latency of several methods of a data set, timed in pairs: their saved explainers loaded in
    this process (one thread), each of the single-instance rows explained by every one of them in turn, for
    ``task['rounds']`` rounds, the order reversed every other round.

    The explain-single steps time each method in a process of its own, minutes apart; on a shared host whose speed
    drifts within minutes, the ratio of two such medians moves as much as a change of the code. Here a slow moment
    weighs on every method alike, so the ratio between two methods (CounteRGAN's over CFRL's) holds.
    """
    explain: Dict[str, ExplainFn] = {}
    ds: Optional[Dataset] = None
    for key in task["methods"]:
        ds, explain[key] = _load_explainer({**task, "method": key, "method_dir": str(Path(task["dataset_dir"]) / key)})
    if ds is None:
        raise ValueError("paired latency needs at least one method.")
    rows = _rows(task)["single"]
    for fn in explain.values():  # warm-up: traces and allocates once
        for r in rows[:10]:
            fn(ds.X_test[r:r + 1], ds.target)
    times: Dict[str, List[float]] = {key: [] for key in explain}
    order = list(explain.items())
    for round_ in range(int(task["rounds"])):
        for r in rows:
            x = ds.X_test[r:r + 1]
            for key, fn in (order if round_ % 2 == 0 else order[::-1]):
                start = time.perf_counter()
                fn(x, ds.target)
                times[key].append(time.perf_counter() - start)
    return {"rounds": int(task["rounds"]), "rows": int(len(rows)),
            "methods": {key: {"median_ms": 1e3 * float(np.median(t)), "mean_ms": 1e3 * float(np.mean(t))}
                        for key, t in times.items()}}


# ---------------------------------------------------------------------------------------------
# alibi's gradient searches, in a private TF1 graph and session
# ---------------------------------------------------------------------------------------------


def baseline(task: Dict[str, Any]) -> Dict[str, Any]:
    """alibi's ``Counterfactual`` (RGD) or ``CounterfactualProto`` (CSGP) on one shard of the subset."""
    import tensorflow as tf

    ds = _dataset(task)
    rows = _rows(task)
    shard, shards = task["shard"]
    subset = rows["subset"][shard::shards]
    warmup = int(rows["warmup"][0])
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=task["threads"], inter_op_parallelism_threads=1)
    graph = tf.Graph()
    result: Dict[str, Any] = {"rows": subset.tolist()}
    with graph.as_default():
        sess = tf.compat.v1.Session(graph=graph, config=config)
        tf.compat.v1.keras.backend.set_session(sess)
        system.reset_peak()
        start = time.perf_counter()
        explainer, explain_kwargs = _baseline_explainer(task, ds, sess)
        result["fit_s"] = time.perf_counter() - start
        result["fit_peak_rss_mb"] = system.peak_rss_mb()
        system.reset_peak()
        explainer.explain(ds.X_test[warmup:warmup + 1], **explain_kwargs)  # warm-up (not counted)
        cfs, found, times = [], [], []
        for r in subset:
            x = ds.X_test[r:r + 1]
            start = time.perf_counter()
            explanation = explainer.explain(x, **explain_kwargs)
            times.append(time.perf_counter() - start)
            cf = explanation.cf
            found.append(cf is not None)
            cfs.append(np.asarray(cf["X"], dtype=np.float32).reshape(x.shape) if cf is not None else x)
        result["explain_peak_rss_mb"] = system.peak_rss_mb()
        sess.close()
    np.savez_compressed(Path(task["method_dir"]) / f"shard-{shard}.npz", rows=subset,
                        cf=np.concatenate(cfs) if cfs else np.zeros((0,) + ds.X_test.shape[1:], np.float32),
                        found=np.asarray(found, dtype=bool), latency_ms=1000 * np.asarray(times))
    result["latency_ms"] = (1000 * np.asarray(times)).tolist()
    result["found"] = int(np.sum(found))
    return result


def _baseline_explainer(task: Dict[str, Any], ds: Dataset, sess: Any) -> Tuple[Any, Dict[str, Any]]:
    """alibi's search of the task, built (and, for CFProto, fitted) in the session's graph; its explain arguments."""
    from alibi.explainers import Counterfactual, CounterfactualProto

    from benchmarks.suite.models import load_autoencoder, load_classifier

    models = _models(task)
    classifier = load_classifier(ds, models.classifier)
    feature_range: Tuple[Any, Any] = (0.0, 1.0) if ds.is_image else ds.feature_range
    if task["method"] == "rgd":
        return Counterfactual(classifier, ds.shape, target_class=ds.target, feature_range=feature_range, sess=sess,
                              **WACHTER_SETTINGS), {}
    explain_kwargs: Dict[str, Any] = {"target_class": [ds.target]}
    proto_kwargs: Dict[str, Any] = dict(CFPROTO_SETTINGS)
    if ds.is_image:
        _, encoder = load_autoencoder(ds, models.autoencoder)
        proto_kwargs["enc_model"] = encoder
        explain_kwargs["k"] = CFPROTO_K_IMAGES
    else:
        proto_kwargs["use_kdtree"] = True
    if ds.cat_vars:
        # with ohe=True CFProto works on one column per variable: the numerical columns' ranges, then
        # a placeholder per categorical variable that its fit replaces with the embedded range
        proto_kwargs.update(cat_vars=ds.cat_vars, ohe=True)
        feature_range = _ordinal_range(ds)
    explainer = CounterfactualProto(classifier, ds.shape, feature_range=feature_range, sess=sess, **proto_kwargs)
    explainer.fit(ds.X_train)
    return explainer, explain_kwargs


def _ordinal_range(ds: Dataset) -> Tuple[np.ndarray, np.ndarray]:
    """CFProto's ``feature_range`` for one-hot data: one column per variable (numerical, then categorical)."""
    first = min(ds.cat_vars)
    if any(start < first for start in ds.cat_vars) or first + sum(ds.cat_vars.values()) != ds.X_train.shape[1]:
        raise ValueError("expected the numerical columns first and the one-hot groups after them.")
    n_cat = len(ds.cat_vars)
    lower, upper = ds.feature_range
    lower = np.concatenate([lower.reshape(1, -1)[:, :first], -np.ones((1, n_cat), np.float32)], axis=1)
    upper = np.concatenate([upper.reshape(1, -1)[:, :first], np.ones((1, n_cat), np.float32)], axis=1)
    return lower, upper


# ---------------------------------------------------------------------------------------------
# diversity: k = 3 counterfactuals per instance, CounteRGAN against DiCE
# ---------------------------------------------------------------------------------------------


def diversity_step(task: Dict[str, Any]) -> Dict[str, Any]:
    """The diversity comparison on one data set, every method in this single-threaded process, one row per call:
    CounteRGAN's ``explain(x, target_class, n_counterfactuals=3)`` (white-box and black-box), then DiCE-random and
    DiCE-genetic. A method that fails leaves the others' results saved; the step then fails, naming it."""
    from benchmarks.suite import diversity

    ds = _dataset(task)
    rows = _rows(task)
    chosen = diversity.diverse_rows(rows["subset"], task["dataset_profile"]["n_diverse"], task["seed"])
    warmup = int(rows["warmup"][0])
    out: Dict[str, Any] = {"rows": chosen.tolist(), "n": int(len(chosen)), "methods": {}}
    errors = []
    for m in diversity.diverse_methods(ds.name):
        start = time.perf_counter()
        try:
            info = _diverse_countergan(task, ds, m.source, m.key, chosen, warmup) if m.source is not None else \
                _diverse_dice(task, ds, str(m.dice), m.key, chosen, warmup)
        except Exception as err:  # the other methods still run; the step fails at the end
            traceback.print_exc()
            errors.append(f"{m.key}: {type(err).__name__}: {err}")
            info = {"error": errors[-1]}
        info["step_s"] = time.perf_counter() - start
        out["methods"][m.key] = info
    out["peak_rss_mb"] = system.peak_rss_mb()
    out["cpu_s"] = time.process_time()  # the whole process's CPU time, imports included (what the job costs a core)
    if errors:
        raise RuntimeError("; ".join(errors))
    return out


def _diverse_countergan(task: Dict[str, Any], ds: Dataset, source: str, key: str, chosen: np.ndarray,
                        warmup: int) -> Dict[str, Any]:
    """CounteRGAN with ``n_counterfactuals=3``, the fitted explainer of the main table's method ``source``."""
    from alibi_countergan.saving import load as load_explainer
    from benchmarks.suite import diversity

    predictor = _predictor(ds, _models(task), _method(ds, source), task["backend"])
    explainer = load_explainer(Path(task["dataset_dir"]) / source / "explainer", predictor)
    found = diversity.explain_countergan(explainer, ds.X_test[chosen], ds.target, ds.X_test[warmup])
    diversity.save(Path(task["dataset_dir"]), key, chosen, **found)
    return {"source": source, "median_ms": float(np.median(found["latency_ms"])), "returned": int(len(found["cf"]))}


def _diverse_dice(task: Dict[str, Any], ds: Dataset, method: str, key: str, chosen: np.ndarray,
                  warmup: int) -> Dict[str, Any]:
    """DiCE (``method``: ``'random'`` or ``'genetic'``) with the profile's settings."""
    from benchmarks.suite import dice, diversity
    from benchmarks.suite.models import keras_function, load_classifier

    dp = task["dataset_profile"]
    predict_fn = keras_function(load_classifier(ds, _models(task).classifier))
    predict_fn(ds.X_test[warmup:warmup + 1])  # traces the compiled function once (not counted)
    start = time.perf_counter()
    explainer = dice.build(ds, predict_fn, method, dp["dice_sample_size"], dp["dice_max_iterations"],
                           dp["dice_row_limit_s"])
    build_s = time.perf_counter() - start
    dice.explain(explainer, ds.X_test[warmup], ds.target, diversity.K, task["seed"])  # warm-up (not counted)
    owner, cf, ms, status = dice.explain_rows(explainer, ds.X_test[chosen], ds.target, diversity.K, task["seed"])
    diversity.save(Path(task["dataset_dir"]), key, chosen, owner, cf, ms, status)
    return {"build_s": build_s, "median_ms": float(np.median(ms)) if len(ms) else None, "returned": int(len(cf)),
            "status": {s: status.count(s) for s in sorted(set(status))}, "settings": dice.describe(explainer)}


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------


def evaluate(task: Dict[str, Any]) -> Dict[str, Any]:
    """Score every method's counterfactuals with the same classifier and autoencoder (per row, saved)."""
    from benchmarks.suite.scoring import score_dataset

    return score_dataset(task)


TASKS: Dict[str, Callable[[Dict[str, Any]], Dict[str, Any]]] = {
    "prepare": prepare, "fit": fit, "explain-batch": explain_batch, "explain-single": explain_single,
    "paired-latency": paired_latency, "baseline": baseline, "diversity": diversity_step, "evaluate": evaluate,
}


def _run(task: Dict[str, Any]) -> bool:
    """Run one task, writing its result (or its error) to its output file; whether it succeeded."""
    output = Path(task["output"])
    start = time.perf_counter()
    try:
        result = TASKS[task["kind"]](task)
        result["process_s"] = time.perf_counter() - start
        text = jsonfile.dumps(result)
    except Exception as err:  # reported to the runner, which prints it and marks the step failed
        jsonfile.write(output, {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})
        traceback.print_exc()
        return False
    output.write_text(text)
    return True


def _run_group(group: Dict[str, Any]) -> bool:
    """Run a group's tasks in order in this process (the quick profile), skipping a task whose needed task failed;
    each task's threads are set before it runs (TensorFlow keeps the first task's intra-op threads)."""
    failed: Set[str] = set()
    for task in group["tasks"]:
        if failed.intersection(task.get("needs", ())):
            print(f"skipped {task['name']}: {sorted(failed.intersection(task['needs']))} failed", flush=True)
            failed.add(task["name"])
            continue
        print(f"--- {task['name']}", flush=True)
        system.set_threads(task["threads"])
        if not _run(task):
            failed.add(task["name"])
    return not failed


def main(argv: List[str]) -> int:
    task = json.loads(Path(argv[1]).read_text())
    if task["kind"] != "fit":  # CFRL's explain shows a progress bar per call
        os.environ.setdefault("TQDM_DISABLE", "1")
    system.set_threads(task["threads"])
    ok = _run_group(task) if task["kind"] == "group" else _run(task)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
