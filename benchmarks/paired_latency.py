"""One instance's latency, CounteRGAN against CFRL, timed in pairs again on a finished full run's saved explainers.

Usage (from the repository root, after a full COMPAS or Pima run of the suite; about a minute per data set)::

    python benchmarks/paired_latency.py [--results-dir benchmarks/results] [--datasets compas pima] [--rounds 3]

The suite's ``paired-latency`` step (:func:`benchmarks.suite.worker.paired_latency`) loads every amortised
explainer of a data set (CounteRGAN's single-instance methods and CFRL) into one process, with one thread, and
explains each single-instance row by every one of them in turn, so that a slow moment of a shared host weighs on all
of them alike. This script runs that step again on a finished run, with the code checked out now (the explainers'
fits are the run's): a change of the explain path is then measured against the same CFRL on the same rows.
Printed per CounteRGAN method: its median time, CFRL's, and the ratio.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Sequence

REPO = Path(__file__).resolve().parents[1]


def paired(logs: Path, dataset: str, rounds: int) -> Dict[str, float]:
    """Median milliseconds per explanation of one instance for each explainer of ``dataset`` in the run's ``logs``."""
    from benchmarks.suite import worker

    tasks = sorted(logs.glob(f"{dataset}-*-explain-single.task.json"))
    names = [t.name[len(dataset) + 1:-len("-explain-single.task.json")] for t in tasks]
    if "cfrl" not in names:
        sys.exit(f"No CFRL step of {dataset} in {logs}: run the full profile of the suite on {dataset} first.")
    task = json.loads(tasks[0].read_text())
    result = worker.paired_latency({**task, "kind": "paired-latency", "methods": names, "rounds": rounds})
    return {key: m["median_ms"] for key, m in result["methods"].items()}


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
