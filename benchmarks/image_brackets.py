"""How far a refined image's residual shrinks with brackets of fewer scales: the L1 each bracket gives, against a
grid, on a finished full MNIST run's fitted explainers.

Usage (from the repository root, after ``tox -e bench`` or ``python -m benchmarks.suite --profile full --datasets
mnist``; about 5 minutes on two cores)::

    python benchmarks/image_brackets.py [--results-dir benchmarks/results] [--images 2000]

A refined image is shrunk along its residual (see :meth:`alibi_countergan.refine.Refiner.bracket`): the original,
the proposal and the residual at each scale of the bracket are scored in one predictor call, and the crossing of
the target's log-odds is interpolated between the largest scale that misses the target and the next, then scored
in a second call. Each scale of the bracket is one more classifier row per image. For the first ``--images`` test
images whose proposal reaches the target, this prints the mean L1 of the counterfactual that each bracket finds
(three scales, 0.25, 0.5 and 0.75, as :data:`alibi_countergan.refine.BRACKET_SCALES`; two, 1/3 and 2/3; one, 0.5;
none: the interpolation between the original and the proposal), each the library's own shrink
(:class:`~alibi_countergan.refine.Refiner` with those ``bracket_scales``), and, for reference, of the smallest scale
on a grid of 48 that reaches the target (48 rows per image).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BRACKETS = {"three scales (0.25, 0.5, 0.75)": (0.25, 0.5, 0.75), "two (1/3, 2/3)": (1 / 3, 2 / 3),
            "one (0.5)": (0.5,), "none": ()}
GRID = 48


def measure(task: Dict[str, Any], n_images: int) -> Dict[str, float]:
    """The mean L1 of each bracket (and of the grid) for one fitted explainer of a full run."""
    from alibi_countergan.refine import Criterion, Refiner
    from alibi_countergan.saving import load
    from benchmarks.suite import worker

    ds = worker._dataset(task)
    method = worker._method(ds, task["method"])
    explainer = load(Path(task["method_dir"]) / "explainer",
                     worker._predictor(ds, worker._models(task), method, task["backend"]))
    state = explainer._state()
    inference = explainer._inference(state)
    criterion = Criterion(explainer.target_proba)
    refiner = inference.refiner(np.dtype(np.float32), criterion)
    tensors = state.space.tensors_for(np.float32)
    flat = ds.X_test[:n_images].reshape(min(n_images, len(ds.X_test)), -1).astype(np.float32)
    mask = np.broadcast_to(state.space.mutable, flat.shape).astype(np.float32)
    targets = np.full(len(flat), ds.target)
    _, cf, proba, x_proba = inference.proposals(flat, targets, mask)
    keep = np.flatnonzero(criterion.met(proba, targets) & (x_proba.argmax(axis=1) != ds.target))
    x, targets, mask, cf, proba, x_proba = (a[keep] for a in (flat, targets, mask, cf, proba, x_proba))

    def l1(counterfactuals: np.ndarray) -> float:
        return float(np.abs(counterfactuals - x).sum(axis=1).mean())

    smallest = np.ones(len(x))
    for k in range(GRID, 0, -1):  # the smallest scale on the grid that reaches the target
        candidates = refiner.build(x, cf, mask, np.full(len(x), k / GRID))
        smallest[criterion.met(refiner.predict(candidates), targets)] = k / GRID
    out = {"images whose proposal reaches the target": float(len(x)), "proposal": l1(cf),
           f"grid of {GRID}": l1(refiner.build(x, cf, mask, smallest))}
    for name, points in BRACKETS.items():
        bracketed = Refiner(state.space, tensors, inference.predict, criterion, bracket_scales=points)
        out[name] = l1(bracketed._interpolate(x, targets, mask, cf, proba, x_proba)[0])
    return out


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"),
                        help="the suite's --results-dir of a finished full MNIST run")
    parser.add_argument("--images", type=int, default=2000, help="the first test images to explain")
    args = parser.parse_args(list(argv) or None)
    logs = Path(args.results_dir) / "full" / "logs"
    sys.path.insert(0, str(REPO))
    from benchmarks.suite import system

    system.set_threads(2)
    for method in ("countergan-wb", "countergan-bb"):
        path = logs / f"mnist-{method}-explain-single.task.json"
        if not path.is_file():
            sys.exit(f"{path} is missing: run the full MNIST benchmark first (python -m benchmarks.suite --profile "
                     f"full --datasets mnist), or name its --results-dir.")
        figures = measure(json.loads(path.read_text()), args.images)
        print(method, "mean L1:", json.dumps({k: round(v, 2) for k, v in figures.items()}), flush=True)


if __name__ == "__main__":
    main()
