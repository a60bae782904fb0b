"""PyTorch against TensorFlow: the same examples, data and seed with each backend.

For each installed backend this trains the same classifier recipe (the test suite's, from
:mod:`alibi_countergan.testing`) on the same split, fits CounteRGAN with the same parameters and seed,
and reports on the test set the validity (share of counterfactuals the classifier assigns to
their target), the mean L1 distance of a counterfactual to its instance, and the fit time; then
the time of a single-instance ``explain`` call (median of many warm calls, the backends'
calls interleaved in rounds so that both see the same machine load) and of one batch call,
with the TensorFlow / PyTorch ratio.

Examples:

- ``pima-white-box``: Pima diabetes, the framework's MLP classifier passed as a model;
- ``pima-black-box``: one classifier wrapped in a plain numpy function, the same for both backends
  (the Keras model where TensorFlow is installed, the issue's example; ``backend=`` named), so that
  the backends are compared with the same predictor (its cost is part of every ``explain``);
- ``digits-white-box``: scikit-learn's 8x8 digits (images, convolutional networks), target ``'other'``.

Run from the repository root: ``python benchmarks/backends.py`` (Pima is the copy shipped with the package).
"""

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from alibi_countergan import CounteRGAN
from alibi_countergan.backends import installed
from alibi_countergan.datasets import load_pima
from alibi_countergan.testing import FRAMEWORKS, Framework

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _digits() -> Dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)[..., None]
    order = np.random.default_rng(0).permutation(len(images))
    train, test = order[:1400], order[1400:]
    return {"X_train": images[train], "y_train": d.target[train], "X_test": images[test], "y_test": d.target[test]}


def _examples(pima_steps: int, digits_steps: int) -> List[Dict[str, Any]]:
    pima = load_pima()
    X_train, X_test, y_train, y_test = pima.split(0.2, seed=0)
    digits = _digits()
    return [
        {"name": "pima-white-box", "X_train": X_train, "y_train": y_train, "X_test": X_test, "y_test": y_test,
         "shape": (1, 8), "model": lambda fw, x: fw.mlp(8, 2, x), "epochs": 40, "black_box": False,
         "steps": pima_steps},
        {"name": "pima-black-box", "X_train": X_train, "y_train": y_train, "X_test": X_test, "y_test": y_test,
         "shape": (1, 8), "model": lambda fw, x: fw.mlp(8, 2, x), "epochs": 40, "black_box": True,
         "steps": pima_steps},
        {"name": "digits-white-box", "X_train": digits["X_train"], "y_train": digits["y_train"],
         "X_test": digits["X_test"], "y_test": digits["y_test"], "shape": (1, 8, 8, 1),
         "model": lambda fw, x: fw.digits_net(), "epochs": 30, "black_box": False, "steps": digits_steps},
    ]


def _fit(fw: Framework, example: Dict[str, Any], seed: int, shared: Optional[Framework]) -> Dict[str, Any]:
    """Train the classifier (of ``shared``'s framework for a black-box example) and fit CounteRGAN with ``fw``."""
    X_train, X_test = example["X_train"], example["X_test"]
    owner = shared if example["black_box"] and shared is not None else fw
    model = owner.train(example["model"](owner, X_train), X_train, example["y_train"], epochs=example["epochs"],
                        seed=seed)
    predictor = owner.numpy_fn(model) if example["black_box"] else model
    accuracy = float(np.mean(owner.numpy_fn(model)(X_test).argmax(1) == example["y_test"]))
    start = time.perf_counter()
    explainer = CounteRGAN(predictor, example["shape"], backend=fw.name, train_steps=example["steps"], seed=seed,
                           verbose=False).fit(X_train)
    fit_s = time.perf_counter() - start
    assert explainer.white_box != example["black_box"]
    explanation = explainer.explain(X_test)
    l1 = np.abs(explanation.residual.reshape(len(X_test), -1)).sum(1)
    return {"explainer": explainer, "accuracy": accuracy, "fit_s": fit_s, "classifier": owner.name,
            "validity": float(np.mean(explanation.success)), "l1": float(l1.mean()),
            "l1_ci": float(1.96 * l1.std() / np.sqrt(len(l1)))}


def _interleaved_median_ms(calls: Dict[str, Callable[[], object]], repeats: int, rounds: int = 10) -> Dict[str, float]:
    """Median time of each call, measured in alternating rounds (so that load changes hit every backend)."""
    for call in calls.values():  # warm up: tracing, caches
        for _ in range(20):
            call()
    times: Dict[str, List[float]] = {name: [] for name in calls}
    per_round = max(1, repeats // rounds)
    for _ in range(rounds):
        for name, call in calls.items():
            for _ in range(per_round):
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark and print its table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pima-steps", type=int, default=2000, help="training iterations on Pima")
    parser.add_argument("--digits-steps", type=int, default=600, help="training iterations on digits")
    parser.add_argument("--repeats", type=int, default=1000, help="timed single-instance explain calls per backend")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch.set_num_threads for the run (0: torch's default); TensorFlow keeps its own")
    parser.add_argument("--only", nargs="*", help="example names to run (default: all)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    backends = [name for name in ("pytorch", "tensorflow") if name in installed()]
    if "pytorch" in backends and args.torch_threads > 0:
        import torch

        torch.set_num_threads(args.torch_threads)
    frameworks = {name: FRAMEWORKS[name]() for name in backends}
    print(f"backends: {', '.join(backends)}; seed {args.seed}; {os.cpu_count()} CPU cores; "
          f"torch threads: {args.torch_threads or 'default'}")
    results: List[Dict[str, Any]] = []
    for example in _examples(args.pima_steps, args.digits_steps):
        if args.only and example["name"] not in args.only:
            continue
        shared = frameworks.get("tensorflow", frameworks.get("pytorch"))
        fitted = {name: _fit(fw, example, args.seed, shared) for name, fw in frameworks.items()}
        x_one, x_all = example["X_test"][:1], example["X_test"]
        single = _interleaved_median_ms({n: (lambda e=f["explainer"], x=x_one: e.explain(x))
                                         for n, f in fitted.items()}, args.repeats)
        batch = _interleaved_median_ms({n: (lambda e=f["explainer"], x=x_all: e.explain(x))
                                        for n, f in fitted.items()}, repeats=20, rounds=4)
        for name, f in fitted.items():
            row = {"example": example["name"], "backend": name, "classifier": f["classifier"],
                   "steps": example["steps"], "classifier_accuracy": f["accuracy"], "fit_s": f["fit_s"],
                   "validity": f["validity"],
                   "l1": f["l1"], "l1_ci95": f["l1_ci"], "explain_one_ms": single[name],
                   "explain_batch_ms": batch[name], "batch_size": len(example["X_test"])}
            results.append(row)

    header = (f"{'example':<18}{'backend':<12}{'classifier':<12}{'acc':>6}{'validity':>9}{'L1':>16}{'fit s':>8}"
              f"{'1 explain ms':>14}{'batch ms':>10}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['example']:<18}{r['backend']:<12}{r['classifier']:<12}{r['classifier_accuracy']:>6.3f}{r['validity']:>9.3f}"
              f"{r['l1']:>9.2f} ±{r['l1_ci95']:>5.2f}{r['fit_s']:>8.1f}{r['explain_one_ms']:>14.3f}"
              f"{r['explain_batch_ms']:>10.2f}")
    if len(backends) == 2:
        print("\nTensorFlow / PyTorch, single-instance explain (median):")
        for example in dict.fromkeys(r["example"] for r in results):
            by = {r["backend"]: r for r in results if r["example"] == example}
            ratio = by["tensorflow"]["explain_one_ms"] / by["pytorch"]["explain_one_ms"]
            print(f"  {example:<18}{by['tensorflow']['explain_one_ms']:.3f} ms / "
                  f"{by['pytorch']['explain_one_ms']:.3f} ms = {ratio:.2f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
