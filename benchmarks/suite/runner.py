"""Runs the benchmark: every step in a worker process, then the report.

Order: for each data set, ``prepare`` (models and rows); the GAN-based methods and CFRL one after
the other (fit with all threads, CFRL's with one, one batch explanation with all threads,
single-instance latency with one thread), then, where CFRL runs, every amortised method's
single-instance latency again, timed in pairs in one process (the ratio to CFRL that issue 20
reads); alibi's searches on the instance subset, split into shards that run in
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
from typing import Any, Dict, List, Optional, Tuple

from benchmarks.suite import jsonfile, report, settings, system
from benchmarks.suite.diversity import diverse_methods
from benchmarks.suite.methods import methods

PAIRED_ROUNDS = 3
"""Rounds of the paired latency step over a data set's single-instance rows (see
:func:`benchmarks.suite.worker.paired_latency`)."""


@dataclass
class Step:
    """One benchmark step: a worker task, the steps it needs and, once run, its result."""

    name: str
    task: Dict[str, Any]
    log: Path
    needs: Tuple[str, ...] = ()
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


def _worker(task_file: Path, log: Path, threads: int) -> int:
    """Run ``benchmarks.suite.worker`` on a task file with the thread settings of ``threads``; its exit code."""
    env = dict(os.environ)
    env.update(system.thread_environment(threads))
    env["PYTHONPATH"] = os.pathsep.join([str(settings.REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    with open(log, "w") as out:
        return subprocess.call([sys.executable, "-m", "benchmarks.suite.worker", str(task_file)], cwd=settings.REPO,
                               env=env, stdout=out, stderr=subprocess.STDOUT)


def _write_task(step: Step) -> Path:
    """Write the step's task file (its output path included); its path."""
    step.log.parent.mkdir(parents=True, exist_ok=True)
    task_file = step.log.with_suffix(".task.json")
    step.task["output"] = str(step.log.with_suffix(".json"))
    jsonfile.write(task_file, step.task)
    return task_file


def _read_result(step: Step, code: Optional[int]) -> None:
    """Read the step's output into ``step.result``; ``code``: its process's exit code (None for a group's step)."""
    output = Path(step.task["output"])
    step.result = json.loads(output.read_text()) if output.is_file() else {"error": f"exit code {code}, no output"}
    step.ok = code in (0, None) and "error" not in step.result
    if not step.ok:
        if "traceback" in step.result:
            tail = step.result["traceback"].splitlines()[-15:]
        else:
            tail = step.log.read_text().splitlines()[-15:] if step.log.is_file() else []
        _log(f"FAILED {step.name} ({step.result.get('error', code)}); log {step.log}:\n    " + "\n    ".join(tail))


def run_step(step: Step) -> Step:
    """Run a worker process for the step; its output JSON becomes ``step.result``."""
    task_file = _write_task(step)
    start = time.perf_counter()
    code = _worker(task_file, step.log, step.task["threads"])
    step.seconds = time.perf_counter() - start
    _read_result(step, code)
    return step


def run_group(group: List[Step], log: Path, threads: int) -> List[Step]:
    """Run the steps one after the other in one worker process (the quick profile's shared processes).

    A step whose needed step failed in the group is skipped by the worker; ``seconds`` is the step's own time
    in the process (the process's start and imports are not in it). The steps' logs are the group's log.
    """
    for step in group:
        step.task.update(name=step.name, needs=list(step.needs))
        _write_task(step)
        step.log = log
    group_file = log.with_suffix(".group.json")
    jsonfile.write(group_file, {"kind": "group", "threads": threads, "tasks": [s.task for s in group]})
    _worker(group_file, log, threads)
    failed = set()
    for step in group:
        if failed.intersection(step.needs):  # skipped by the worker: no output, nothing more to report
            step.result, step.ok = {"error": f"not run: {sorted(failed.intersection(step.needs))} failed"}, False
        else:
            _read_result(step, None)
            step.seconds = float(step.result.get("process_s", 0.0))
        if not step.ok:
            failed.add(step.name)
    return group


def _arguments(argv: Optional[List[str]]) -> argparse.Namespace:
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
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = _arguments(argv)
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
    machine = system.machine(settings.REPO)
    _log(f"profile {profile.name}: data sets {list(profile.datasets)}, backend {backend}, {profile.threads} threads, "
         f"{profile.baseline_workers} baseline workers{', shared processes' if profile.shared_processes else ''}; "
         f"data {data_dir}; results {out}")
    _log(f"machine: {machine['cpu']}, {machine['cores_available']} cores available, "
         f"load {machine['load_average_at_start']}")
    started = time.perf_counter()
    tasks = _TaskMaker(profile, out, data_dir, Path(args.cache_dir).resolve(), backend)
    steps: Dict[str, Step] = {}
    for dataset in profile.datasets:
        (out / dataset).mkdir(parents=True, exist_ok=True)
        _run_sequential(profile, _dataset_plan(profile, dataset, tasks), steps, out / "logs" / f"{dataset}.log")
    _parallel_jobs(profile, steps, tasks, out)
    evaluations = [Step(f"{d}/evaluate", tasks(d, "evaluate", profile.threads), tasks.log(f"{d}/evaluate"),
                        needs=(f"{d}/prepare",)) for d in profile.datasets]
    _run_sequential(profile, evaluations, steps, out / "logs" / "evaluate.log")
    return _report(out, profile, machine, backend, steps, time.perf_counter() - started, data_dir, args.docs)


@dataclass
class _TaskMaker:
    """Builds the task dictionaries of a run's steps."""

    profile: settings.Profile
    out: Path
    data_dir: Path
    cache: Path
    backend: str

    def __call__(self, dataset: str, kind: str, threads: int, **extra: Any) -> Dict[str, Any]:
        dataset_dir = self.out / dataset
        t = {"kind": kind, "dataset": dataset, "data_dir": str(self.data_dir), "cache_dir": str(self.cache),
             "dataset_dir": str(dataset_dir), "dataset_profile": self.profile.to_dict()["datasets"][dataset],
             "seed": self.profile.seed, "threads": threads, "backend": self.backend}
        t.update(extra)
        if "method" in t:
            t["method_dir"] = str(dataset_dir / t["method"])
            Path(t["method_dir"]).mkdir(parents=True, exist_ok=True)
        return t

    def log(self, name: str) -> Path:
        return self.out / "logs" / f"{name.replace('/', '-')}.log"


def _dataset_plan(profile: settings.Profile, dataset: str, tasks: _TaskMaker) -> List[Step]:
    """A data set's sequential steps: ``prepare``, then per GAN-based method and CFRL its fit, one batch
    explanation with all threads and single-instance latency with one thread."""
    prepare = f"{dataset}/prepare"
    plan = [Step(prepare, tasks(dataset, "prepare", profile.threads), tasks.log(prepare))]
    for method in methods(dataset):
        if method.baseline:
            continue
        name = f"{dataset}/{method.key}"
        fit = f"{dataset}/{method.fitted_by or method.key}/fit"
        if method.fitted_by is None:
            # CFRL's networks are tiny (batches of 100 rows through 256-unit layers, a predictor call per
            # step): a second thread only adds synchronisation, which on a busy 2-core machine made each
            # step ~20x slower (17 ms with one thread, ~300 ms with two)
            fit_threads = 1 if method.cfrl else profile.threads
            plan.append(Step(fit, tasks(dataset, "fit", fit_threads, method=method.key), tasks.log(fit),
                             needs=(prepare,)))
        for kind, threads in (("explain-batch", profile.threads), ("explain-single", 1)):
            plan.append(Step(f"{name}/{kind}", tasks(dataset, kind, threads, method=method.key),
                             tasks.log(f"{name}/{kind}"), needs=(prepare, fit)))
    paired = [m.key for m in methods(dataset) if not m.baseline]
    if any(m.cfrl for m in methods(dataset)):  # CounteRGAN against CFRL, timed in pairs in one process
        name = f"{dataset}/paired-latency"
        plan.append(Step(name, tasks(dataset, "paired-latency", 1, methods=paired, rounds=PAIRED_ROUNDS),
                         tasks.log(name), needs=tuple(f"{dataset}/{k}/explain-single" for k in paired)))
    return plan


def _run_sequential(profile: settings.Profile, plan: List[Step], steps: Dict[str, Step], group_log: Path) -> None:
    """Run the plan's steps in order, each once the steps it needs succeeded (a process each, or one process for
    the whole plan with shared processes); each run step goes to ``steps``."""
    if profile.shared_processes:
        inside = {s.name for s in plan}
        plan = [s for s in plan if all(n in inside or n in steps and steps[n].ok for n in s.needs)]
        if not plan:
            return
        _log(f"{len(plan)} steps in one process ({plan[0].name} to {plan[-1].name}) ...")
        run_group(plan, group_log, profile.threads)
        succeeded = {n for n, s in steps.items() if s.ok} | {s.name for s in plan if s.ok}
        for step in plan:
            if all(n in succeeded for n in step.needs):  # the worker skipped the others
                steps[step.name] = step
                if step.ok:
                    _log(f"{step.name} done in {step.seconds:.1f} s{_brief(step.result)}")
        return
    for step in plan:
        if not all(n in steps and steps[n].ok for n in step.needs):
            continue
        _log(f"{step.name} ...")
        steps[step.name] = run_step(step)
        if step.ok:
            _log(f"{step.name} done in {step.seconds:.1f} s{_brief(step.result)}")


def _parallel_jobs(profile: settings.Profile, steps: Dict[str, Step], tasks: _TaskMaker, out: Path) -> None:
    """The diversity comparisons and alibi's searches (shards), in parallel single-threaded processes; their steps go
    to ``steps``. With shared processes: the diversity jobs in one process, and each shard's searches in one."""
    jobs = _diversity_jobs(profile, steps, tasks)
    for dataset in profile.datasets:
        if f"{dataset}/prepare" not in steps or not steps[f"{dataset}/prepare"].ok:
            continue
        for method in methods(dataset):
            if not method.baseline:
                continue
            for shard in range(profile.baseline_workers):
                name = f"{dataset}/{method.key}/shard-{shard}"
                jobs.append(Step(name, tasks(dataset, "baseline", 1, method=method.key,
                                             shard=[shard, profile.baseline_workers]), tasks.log(name)))
    if not jobs:
        return
    if profile.shared_processes:
        groups = [[j for j in jobs if j.task["kind"] == "diversity"]]
        groups += [[j for j in jobs if j.task.get("shard", [None])[0] == s] for s in range(profile.baseline_workers)]
        _log(f"the diversity comparisons and alibi's searches: {len(jobs)} jobs in {len(groups)} processes, "
             f"{profile.baseline_workers} at a time ...")
        with ThreadPoolExecutor(max_workers=profile.baseline_workers) as pool:
            done = [s for g in pool.map(lambda g: run_group(g, out / "logs" / f"{g[0].name.split('/')[-1]}.log", 1),
                                        [g for g in groups if g]) for s in g]
    else:
        _log(f"the diversity comparisons and alibi's searches: {len(jobs)} jobs on {profile.baseline_workers} "
             f"processes ...")
        with ThreadPoolExecutor(max_workers=profile.baseline_workers) as pool:
            done = list(pool.map(run_step, jobs))
    for step in done:
        steps[step.name] = step
        if step.ok:
            _log(f"{step.name} done in {step.seconds:.1f} s{_job_brief(step.result)}")


def _job_brief(result: Dict[str, Any]) -> str:
    if "latency_ms" in result:
        return f" ({len(result['rows'])} instances, median {_median(result['latency_ms']):.0f} ms)"
    medians = {k: m.get("median_ms") for k, m in result["methods"].items()}
    return f" ({result['n']} instances, median ms " + ", ".join(
        f"{k} {v if v is not None else math.nan:.1f}" for k, v in medians.items()) + ")"


def _diversity_jobs(profile: settings.Profile, steps: Dict[str, Step], tasks: _TaskMaker) -> List[Step]:
    """The diversity comparison of each tabular data set (CounteRGAN's k=3 and DiCE), a single-threaded job each."""
    jobs = []
    for dataset in profile.datasets:
        prepared = steps.get(f"{dataset}/prepare")
        if prepared is not None and prepared.ok and diverse_methods(dataset):
            jobs.append(Step(f"{dataset}/diversity", tasks(dataset, "diversity", 1), tasks.log(f"{dataset}/diversity")))
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
    if task["kind"] in ("diversity", "paired-latency"):
        return f"{task['dataset']}/{task['kind']}"
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
    if "rounds" in result and "methods" in result:
        return " (median ms " + ", ".join(f"{k} {v['median_ms']:.2f}" for k, v in result["methods"].items()) + ")"
    if "accuracy" in result:
        return f" (classifier accuracy {result['accuracy']:.4f})"
    return ""
