"""One instance's latency, CounteRGAN against CFRL, measured in pairs on a finished full run's saved explainers.

Usage (from the repository root, after a full COMPAS or Pima run of the suite; about a minute per data set)::

    python benchmarks/paired_latency.py [--results-dir benchmarks/results] [--datasets compas pima] [--rounds 3]

The suite times each method's single-instance latency in a step of its own, one after the other. On a shared host
whose speed drifts within minutes (a virtual machine next to other tenants), two steps a few minutes apart can read
the same code twice as fast or slow, which moves the ratio between two methods as much as any change of the code.
Here every explainer of a data set that the run saved (CounteRGAN's single-instance steps and CFRL's) is loaded into
one process, with one thread, and each of the run's single-instance rows is explained by every one of them in turn,
for ``--rounds`` rounds (the order reversed every other round), so that a slow moment weighs on all of them alike.
Printed per CounteRGAN method: its median time, CFRL's, and the ratio.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def paired(logs: Path, dataset: str, rounds: int) -> Dict[str, float]:
    """Median milliseconds per explanation of one instance for each explainer of ``dataset`` in the run's ``logs``."""
    from benchmarks.suite import worker

    tasks = sorted(logs.glob(f"{dataset}-*-explain-single.task.json"))
    names = [t.name[len(dataset) + 1:-len("-explain-single.task.json")] for t in tasks]
    keep = [i for i, n in enumerate(names) if n == "cfrl" or n.startswith("countergan")]
    if not any(names[i] == "cfrl" for i in keep):
        sys.exit(f"No CFRL step of {dataset} in {logs}: run the full profile of the suite on {dataset} first.")
    explainers: Dict[str, Callable[..., Any]] = {}
    for i in keep:
        task = json.loads(tasks[i].read_text())
        ds, explain = worker._load_explainer(task)
        explainers[names[i]] = explain
    rows = worker._rows(task)["single"]
    for explain in explainers.values():  # warm-up
        for r in rows[:10]:
            explain(ds.X_test[r:r + 1], ds.target)
    times: Dict[str, List[float]] = {name: [] for name in explainers}
    order = list(explainers.items())
    for round_ in range(rounds):
        for r in rows:
            x = ds.X_test[r:r + 1]
            for name, explain in (order if round_ % 2 == 0 else order[::-1]):
                start = time.perf_counter()
                explain(x, ds.target)
                times[name].append(time.perf_counter() - start)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"),
                        help="the suite's --results-dir of a finished full run")
    parser.add_argument("--datasets", nargs="+", default=["compas", "pima"], choices=["compas", "pima"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(list(argv) or None)
    sys.path.insert(0, str(REPO))
    from benchmarks.suite import system

    system.set_threads(1)
    logs = Path(args.results_dir) / "full" / "logs"
    for dataset in args.datasets:
        medians = paired(logs, dataset, args.rounds)
        cfrl = medians.pop("cfrl")
        for name, ms in medians.items():
            print(f"{dataset} {name}: {ms:.3f} ms, CFRL {cfrl:.3f} ms, CFRL / CounteRGAN {cfrl / ms:.2f}x", flush=True)


if __name__ == "__main__":
    main()
