"""Runs the benchmark: every step in a worker process, then the report.

Order: for each data set, ``prepare`` (models and rows); the GAN-based methods and CFRL one after
the other (fit with all threads, CFRL's with one, one batch explanation with all threads,
single-instance latency with one thread); alibi's searches on the instance subset, split into shards that run in
parallel single-threaded processes (one per core: each call is a long chain of tiny graph
executions that a second thread does not speed up), after a job per tabular data set in the same pool that
compares CounteRGAN's ``n_counterfactuals=3`` with DiCE (:mod:`benchmarks.suite.diversity`); ``evaluate``; and
the report.
"""

import argparse
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from benchmarks.suite import jsonfile, report, settings, system
from benchmarks.suite.diversity import diverse_methods
from benchmarks.suite.methods import methods


@dataclass
class Step:
    """One worker process to run."""

    name: str
    task: Dict[str, Any]
    log: Path
    result: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    ok: bool = False


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def default_backend() -> str:
    """TensorFlow when this alibi-countergan has its TensorFlow backend (the classifiers are Keras), else PyTorch."""
    if importlib.util.find_spec("tensorflow") is not None and \
            importlib.util.find_spec("alibi_countergan.backends.tensorflow") is not None:
        return "tensorflow"
    return "pytorch"


def run_step(step: Step) -> Step:
    """Run a worker process for the step; its output JSON becomes ``step.result``."""
    step.log.parent.mkdir(parents=True, exist_ok=True)
    task_file = step.log.with_suffix(".task.json")
    output = step.log.with_suffix(".json")
    step.task["output"] = str(output)
    jsonfile.write(task_file, step.task)
    env = dict(os.environ)
    env.update(system.thread_environment(step.task["threads"]))
    env["PYTHONPATH"] = os.pathsep.join([str(settings.REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    start = time.perf_counter()
    with open(step.log, "w") as log:
        code = subprocess.call([sys.executable, "-m", "benchmarks.suite.worker", str(task_file)], cwd=settings.REPO,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    step.seconds = time.perf_counter() - start
    step.result = json.loads(output.read_text()) if output.is_file() else {"error": f"exit code {code}, no output"}
    step.ok = code == 0 and "error" not in step.result
    if not step.ok:
        tail = step.log.read_text().splitlines()[-15:]
        _log(f"FAILED {step.name} ({step.result.get('error', code)}); log {step.log}:\n    " + "\n    ".join(tail))
    return step


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite",
                                     description="CounteRGAN against alibi's counterfactual searches (the paper's "
                                                 "Tables 2 and 3, and Pima).")
    parser.add_argument("--profile", choices=sorted(settings.PROFILES), default="full",
                        help="full (tox -e bench) or quick (tox -e bench-quick, CI)")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding mnist.npz, compas-scores-two-years.csv and pima-indians-diabetes.csv "
                             "(default: the quick profile reads the data shipped with the repository; the full "
                             "profile reads $COUNTERGAN_DATA_DIR, else ../shared/data, takes COMPAS and Pima from "
                             "the package when missing there, and fetches MNIST with Keras's loader)")
    parser.add_argument("--cache-dir", default=str(settings.DEFAULT_CACHE_DIR),
                        help="trained classifiers and autoencoders (default: benchmarks/cache)")
    parser.add_argument("--results-dir", default=str(settings.DEFAULT_RESULTS_DIR),
                        help="outputs; each profile writes a folder of its own (default: benchmarks/results)")
    parser.add_argument("--datasets", nargs="+", choices=sorted(settings.DATA_FILES), default=None,
                        help="run only these data sets")
    parser.add_argument("--backend", choices=("auto", "tensorflow", "pytorch"), default="auto",
                        help="CounteRGAN's backend; auto: tensorflow when installed (the classifiers are Keras "
                             "models; with pytorch, white-box methods use an exact PyTorch port)")
    parser.add_argument("--threads", type=int, default=None, help="threads for fits and batches (default: 2)")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel single-threaded processes for alibi's searches (default: 2)")
    parser.add_argument("--n-baseline", type=int, default=None, help="instances for alibi's searches")
    parser.add_argument("--docs", default=None,
                        help="also write the report into this markdown file, between its benchmark markers "
                             "(docs/benchmarks.md), and copy the figure next to it")
    parser.add_argument("--rescore", action="store_true",
                        help="score the saved counterfactuals of a finished run of this profile again and rewrite "
                             "its report, without fitting or explaining anything")
    args = parser.parse_args(argv)

    profile = settings.profile(args.profile, threads=args.threads, workers=args.workers,
                               datasets=tuple(args.datasets) if args.datasets else None, n_baseline=args.n_baseline)
    data_dir = settings.data_dir(args.data_dir, profile.name)
    for name in profile.datasets:  # fail early, naming the missing file
        settings.data_file(data_dir, name)
    backend = default_backend() if args.backend == "auto" else args.backend
    out = Path(args.results_dir).resolve() / profile.name
    if args.rescore:
        return _rescore(out, profile, data_dir, backend, args.docs)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cache = Path(args.cache_dir).resolve()
    machine = system.machine(settings.REPO)
    _log(f"profile {profile.name}: data sets {list(profile.datasets)}, backend {backend}, {profile.threads} threads, "
         f"{profile.baseline_workers} baseline workers; data {data_dir}; results {out}")
    _log(f"machine: {machine['cpu']}, {machine['cores_available']} cores available, "
         f"load {machine['load_average_at_start']}")
    started = time.perf_counter()
    steps: Dict[str, Step] = {}

    def task(kind: str, dataset: str, threads: int, **extra: Any) -> Dict[str, Any]:
        dataset_dir = out / dataset
        t = {"kind": kind, "dataset": dataset, "data_dir": str(data_dir), "cache_dir": str(cache),
             "dataset_dir": str(dataset_dir), "dataset_profile": profile.to_dict()["datasets"][dataset],
             "seed": profile.seed, "threads": threads, "backend": backend}
        t.update(extra)
        if "method" in t:
            t["method_dir"] = str(dataset_dir / t["method"])
            Path(t["method_dir"]).mkdir(parents=True, exist_ok=True)
        return t

    def sequential(name: str, t: Dict[str, Any]) -> Step:
        _log(f"{name} ...")
        step = run_step(Step(name, t, out / "logs" / f"{name.replace('/', '-')}.log"))
        steps[name] = step
        if step.ok:
            _log(f"{name} done in {step.seconds:.1f} s{_brief(step.result)}")
        return step

    for dataset in profile.datasets:
        (out / dataset).mkdir(parents=True, exist_ok=True)
        prepared = sequential(f"{dataset}/prepare", task("prepare", dataset, profile.threads))
        if not prepared.ok:
            continue
        jsonfile.write(out / dataset / "prepare.json", prepared.result)
        for method in methods(dataset):
            if method.baseline:
                continue
            name = f"{dataset}/{method.key}"
            # CFRL's networks are tiny (batches of 100 rows through 256-unit layers, a predictor call per
            # step): a second thread only adds synchronisation, which on a busy 2-core machine made each
            # step ~20x slower (17 ms with one thread, ~300 ms with two)
            fit_threads = 1 if method.cfrl else profile.threads
            if method.fitted_by is not None:
                parent = steps.get(f"{dataset}/{method.fitted_by}/fit")
                if parent is None or not parent.ok:
                    continue
            elif not sequential(f"{name}/fit", task("fit", dataset, fit_threads, method=method.key)).ok:
                continue
            sequential(f"{name}/explain-batch", task("explain-batch", dataset, profile.threads, method=method.key))
            sequential(f"{name}/explain-single", task("explain-single", dataset, 1, method=method.key))

    _parallel_jobs(profile, steps, task, out)

    for dataset in profile.datasets:
        if f"{dataset}/prepare" in steps and steps[f"{dataset}/prepare"].ok:
            sequential(f"{dataset}/evaluate", task("evaluate", dataset, profile.threads))
    return _report(out, profile, machine, backend, steps, time.perf_counter() - started, data_dir, args.docs)


def _parallel_jobs(profile: settings.Profile, steps: Dict[str, Step], task: Callable[..., Dict[str, Any]],
                   out: Path) -> None:
    """The diversity comparisons and alibi's searches (shards), in parallel single-threaded processes; their steps go
    to ``steps``."""
    jobs = _diversity_jobs(profile, steps, task, out)
    for dataset in profile.datasets:
        if f"{dataset}/prepare" not in steps or not steps[f"{dataset}/prepare"].ok:
            continue
        for method in methods(dataset):
            if not method.baseline:
                continue
            for shard in range(profile.baseline_workers):
                name = f"{dataset}/{method.key}/shard-{shard}"
                jobs.append(Step(name, task("baseline", dataset, 1, method=method.key,
                                            shard=[shard, profile.baseline_workers]),
                                 out / "logs" / f"{name.replace('/', '-')}.log"))
    if jobs:
        _log(f"the diversity comparisons and alibi's searches: {len(jobs)} jobs on {profile.baseline_workers} "
             f"processes ...")
        with ThreadPoolExecutor(max_workers=profile.baseline_workers) as pool:
            for step in pool.map(run_step, jobs):
                steps[step.name] = step
                if step.ok and "latency_ms" in step.result:
                    _log(f"{step.name} done in {step.seconds:.1f} s ({len(step.result['rows'])} instances, "
                         f"median {_median(step.result['latency_ms']):.0f} ms)")
                elif step.ok:
                    medians = {k: m.get("median_ms") for k, m in step.result["methods"].items()}
                    _log(f"{step.name} done in {step.seconds:.1f} s ({step.result['n']} instances, median ms "
                         + ", ".join(f"{k} {v if v is not None else math.nan:.1f}" for k, v in medians.items()) + ")")


def _diversity_jobs(profile: settings.Profile, steps: Dict[str, Step], task: Callable[..., Dict[str, Any]],
                    out: Path) -> List[Step]:
    """The diversity comparison of each tabular data set (CounteRGAN's k=3 and DiCE), a single-threaded job each."""
    jobs = []
    for dataset in profile.datasets:
        prepared = steps.get(f"{dataset}/prepare")
        if prepared is not None and prepared.ok and diverse_methods(dataset):
            jobs.append(Step(f"{dataset}/diversity", task("diversity", dataset, 1),
                             out / "logs" / f"{dataset}-diversity.log"))
    return jobs


def _report(out: Path, profile: settings.Profile, machine: Dict[str, Any], backend: str, steps: Dict[str, Step],
            total: float, data_dir: Path, docs: Optional[str]) -> int:
    """Write the scores, tables, JSON and figure of a run; the exit code (1 if a step failed)."""
    for dataset in profile.datasets:
        evaluated = steps.get(f"{dataset}/evaluate")
        if evaluated is not None and evaluated.ok:
            jsonfile.write(out / dataset / "scores.json", evaluated.result)
    failed = [name for name, s in steps.items() if not s.ok]
    results = report.collect(out, profile, machine, backend, {n: _step_record(s) for n, s in steps.items()}, total,
                             str(data_dir))
    paths = report.write(out, results)
    if docs:
        report.update_docs(Path(docs), results, out)
    _log(f"finished in {total / 60:.1f} min; {len(failed)} failed steps{': ' + ', '.join(failed) if failed else ''}")
    for p in paths:
        _log(f"wrote {p}")
    print()
    print(report.markdown(results))
    return 1 if failed else 0


def _step_name(task: Dict[str, Any]) -> str:
    """The runner's name of the step a task file describes."""
    if task["kind"] in ("prepare", "evaluate"):
        return f"{task['dataset']}/{task['kind']}"
    if task["kind"] == "baseline":
        return f"{task['dataset']}/{task['method']}/shard-{task['shard'][0]}"
    if task["kind"] == "diversity":
        return f"{task['dataset']}/diversity"
    return f"{task['dataset']}/{task['method']}/{task['kind']}"


def _rescore(out: Path, profile: settings.Profile, data_dir: Path, backend: str, docs: Optional[str]) -> int:
    """Score a finished run's saved counterfactuals again (new evaluate steps) and rewrite its report."""
    previous = out / "results.json"
    if not previous.is_file():
        raise SystemExit(f"--rescore needs a finished run of the {profile.name} profile in {out} (no results.json).")
    before = json.loads(previous.read_text())
    steps: Dict[str, Step] = {}
    evaluations = []
    for task_file in sorted((out / "logs").glob("*.task.json")):
        t = json.loads(task_file.read_text())
        step = Step(_step_name(t), t, task_file.with_name(task_file.name.replace(".task.json", ".log")))
        if t["kind"] == "evaluate":
            evaluations.append(step)
            continue
        output = Path(t["output"])
        step.result = json.loads(output.read_text()) if output.is_file() else {"error": "no output"}
        step.ok = "error" not in step.result
        step.seconds = float(before.get("steps", {}).get(step.name, {}).get("seconds", 0.0))
        steps[step.name] = step
    for step in evaluations:
        _log(f"{step.name} again ...")
        steps[step.name] = run_step(step)
    return _report(out, profile, before["machine"], before.get("backend", backend), steps, before["total_s"],
                   data_dir, docs)


def _step_record(step: Step) -> Dict[str, Any]:
    return {"ok": step.ok, "seconds": step.seconds, "result": step.result, "log": str(step.log)}


def _median(values: List[float]) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else 0.5 * (v[mid - 1] + v[mid])


def _brief(result: Dict[str, Any]) -> str:
    if "fit_s" in result and "iteration_s" in result:
        return f" (fit {result['fit_s']:.1f} s, {1000 * result['iteration_s']:.0f} ms/iteration)"
    if "batch_s" in result:
        return f" ({result['n']} rows in {result['batch_s']:.3f} s)"
    if "median_ms" in result:
        return f" (median {result['median_ms']:.2f} ms)"
    if "accuracy" in result:
        return f" (classifier accuracy {result['accuracy']:.4f})"
    return ""
