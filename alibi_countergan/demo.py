"""The main job: recourse on the shipped COMPAS table, white-box and black-box, in a few minutes on a CPU.

Run it with ``python -m alibi_countergan`` or ``countergan-demo``. It trains a small PyTorch
classifier (label 1: did not reoffend), fits CounteRGAN white-box (through the classifier's
gradients) and black-box (through a numpy prediction function only), and prints, for a handful
of people the classifier expects to reoffend, what each counterfactual proposes to change and
the probabilities before and after, like Table 4 of the paper, with the time one explanation took.
"""

import argparse
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from alibi_countergan import CounteRGAN, classifiers
from alibi_countergan.datasets import TabularData, load_compas

if TYPE_CHECKING:  # pragma: no cover - for the annotations only
    from torch import nn

DEFAULT_STEPS = 1000
"""Training iterations of each explainer."""

EXPECTED_SECONDS = {"white-box": (10, 30), "black-box": (10, 25)}
"""Fit time of each explainer with :data:`DEFAULT_STEPS` iterations on two CPU cores: measured 10 s each at a
load average of 2, 29 s and 25 s at 7, 57 s and 53 s next to two more busy processes. With 2,000 iterations
the share of people turned favourable was no higher (white-box 64% against 68%, black-box 72% both times)."""

IMMUTABLE = ["age", "juv_fel_count", "juv_misd_count", "juv_other_count", "sex=Female", "sex=Male"]
"""Features the recourse may not touch in the demo (race is added by ``--allow-race``'s absence)."""


def train_classifier(X: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 30) -> "nn.Module":
    """A 3-hidden-layer PyTorch MLP on raw COMPAS features (standardisation is its first layer).

    :func:`alibi_countergan.classifiers.mlp` with hidden layers of 32, 32 and 16 units, trained by
    :func:`alibi_countergan.classifiers.train` with Adam (learning rate 0.001) in batches of about 128
    rows. Trained with one intra-op thread (the user's setting is restored afterwards), like
    CounteRGAN's default ``n_threads``: for a network this small more threads only cost time on a
    shared machine.
    """
    return classifiers.train(classifiers.mlp(X, 2, hidden=(32, 32, 16)), X, y, epochs=epochs, seed=seed,
                             learning_rate=1e-3, batch_size=128, n_threads=1)


WHITE_BOX_AND_BLACK_BOX = ("white-box: the explainer learns through the classifier's gradients (it needs the model "
                           "itself); black-box: it only calls a function that returns the classifier's "
                           "probabilities (any model, even a remote one).")
"""The one-line meaning of the two modes, printed by the demo."""

UNCHANGED = "."
"""A change cell for a value the counterfactual keeps."""


def format_change(before: Union[float, str], after: Union[float, str]) -> str:
    """A change cell: ``+2`` or ``-0.50`` for numbers, ``old -> new`` for categories, ``.`` when unchanged."""
    if isinstance(before, str) or isinstance(after, str):
        return UNCHANGED if before == after else f"{before} -> {after}"
    delta = float(after) - float(before)
    if abs(delta) < 1e-6:
        return UNCHANGED
    return f"{delta:+.0f}" if float(before).is_integer() and float(after).is_integer() else f"{delta:+.2f}"


def format_person(data: TabularData, original: np.ndarray, counterfactuals: Dict[str, np.ndarray],
                  before: np.ndarray, after: Dict[str, np.ndarray], success: Dict[str, bool],
                  favourable: int) -> List[str]:
    """The lines that show one person's values and each method's proposed changes (Table 4 of the paper).

    Parameters
    ----------
    data
        The data set (feature names and categories).
    original
        The person's encoded row.
    counterfactuals
        Per method, its counterfactual of the row.
    before, after
        The classifier's probabilities for the row, and per method for its counterfactual.
    success
        Per method, whether its counterfactual reached the favourable class; a method that did
        not is reported as "no counterfactual found" instead of a column.
    favourable
        The target class.
    """
    label = f"P({data.target_names[favourable]})"
    found = [name for name in counterfactuals if success[name]]
    lines: List[str] = []
    if found:
        values = data.describe(original)
        described = {name: data.describe(counterfactuals[name]) for name in found}
        rows = [["feature", "original"] + [f"{name} change" for name in found]]
        for feature, value in values.items():
            shown = value if isinstance(value, str) else f"{value:g}"
            rows.append([feature, shown] + [format_change(value, described[n][feature]) for n in found])
        rows.append([label, f"{before[favourable]:.2f}"] + [f"{after[n][favourable]:.2f}" for n in found])
        widths = [max(len(row[j]) for row in rows) for j in range(len(rows[0]))]

        def line(row: List[str]) -> str:
            return "  ".join([row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])])

        lines.append(line(rows[0]))
        lines.append("-" * len(lines[0]))
        lines.extend(line(row) for row in rows[1:])
    for name in counterfactuals:
        if not success[name]:
            lines.append(f"{name}: no counterfactual found ({label} {before[favourable]:.2f} -> "
                         f"{after[name][favourable]:.2f}, the classifier still predicts "
                         f"'{data.target_names[int(np.argmax(after[name]))]}')")
    return lines


def _median_ms(fn: Callable[[], object], repeats: int = 50) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def _one_call(explainer: CounteRGAN, x: np.ndarray, target: int) -> Callable[[], object]:
    def call() -> object:
        return explainer.explain(x, target_class=target)

    return call


def _arguments(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--people", type=int, default=4, help="how many people to show")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="training iterations of each explainer")
    parser.add_argument("--allow-race", action="store_true",
                        help="let counterfactuals change race (to probe the classifier for bias)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def _fit_explainers(model: "nn.Module", predict_fn: Callable[[np.ndarray], np.ndarray], data: TabularData,
                    X_train: np.ndarray, immutable: List[str], args: argparse.Namespace) -> Dict[str, CounteRGAN]:
    """The white-box and the black-box explainer, fitted on ``X_train`` with the demo's constraints."""
    common = dict(feature_names=data.feature_names, cat_vars=data.cat_vars, immutable_features=immutable,
                  monotone={"priors_count": "decreasing"},
                  ordinal_features=["priors_count", "days_b_screening_arrest"], train_steps=args.steps,
                  seed=args.seed, verbose=not args.quiet)
    explainers: Dict[str, CounteRGAN] = {}
    for stage, (name, predictor, method) in enumerate((("white-box", model, "white-box"),
                                                       ("black-box", predict_fn, "black-box")), start=2):
        low, high = (t * args.steps / DEFAULT_STEPS for t in EXPECTED_SECONDS[name])
        print(f"{stage}/3 fitting the {name} explainer: {args.steps} iterations (about {low:.0f} to {high:.0f} s on "
              f"two cores, more when other work keeps them busy)", flush=True)
        start = time.perf_counter()
        explainers[name] = CounteRGAN(predictor, (1, X_train.shape[1]), method=method, **common).fit(X_train)
        print(f"    fitted in {time.perf_counter() - start:.1f} s", flush=True)
    return explainers


def _show_people(data: TabularData, explainers: Dict[str, CounteRGAN], X: np.ndarray, people: np.ndarray,
                 immutable: List[str], favourable: int) -> None:
    """Print each person's table of proposed changes, after a legend."""
    label = f"P({data.target_names[favourable]})"
    explanations = {name: e.explain(X[people], target_class=favourable) for name, e in explainers.items()}
    print(f"\nRecourse for {len(people)} people the classifier expects to reoffend (target: "
          f"'{data.target_names[favourable]}').")
    print(f"'original' holds the person's values; each 'change' column holds what that explainer's "
          f"counterfactual changes: numbers show the change ('+2', '-3'), categories show 'old -> new', "
          f"'{UNCHANGED}' means unchanged. Last row: the classifier's {label} before and after.")
    frozen = list(dict.fromkeys(name.split("=")[0] for name in immutable))  # one-hot columns by their feature
    print(f"Never changed: {', '.join(frozen)}; priors_count may only decrease; counts stay whole numbers.\n")
    for i, person in enumerate(people):
        print(f"person #{person}")
        lines = format_person(data, X[person], {n: e.cf["X"][i] for n, e in explanations.items()},
                              explanations["white-box"].orig_proba[i],
                              {n: e.cf["proba"][i] for n, e in explanations.items()},
                              {n: bool(np.atleast_1d(e.data["success"])[i]) for n, e in explanations.items()},
                              favourable)
        print("\n".join(lines) + "\n")


def _show_summary(explainers: Dict[str, CounteRGAN], X: np.ndarray, unfavourable: np.ndarray, people: np.ndarray,
                  favourable: int) -> None:
    """Print each explainer's share of favourable counterfactuals and its single and batch explain times."""
    print(f"On all {len(unfavourable)} test people the classifier expects to reoffend:")
    for name, explainer in explainers.items():
        batch = explainer.explain(X[unfavourable], target_class=favourable)
        found = np.atleast_1d(batch.data["success"])  # one bool for a single row
        changed = (np.abs(batch.residual[found]) > 1e-6).sum(1).mean() if found.any() else 0.0
        single = _median_ms(_one_call(explainer, X[people[:1]], favourable))
        start = time.perf_counter()
        explainer.explain(X, target_class=favourable)
        batch_s = time.perf_counter() - start
        print(f"  {name}: {found.mean():.1%} turned favourable ({int(found.sum())} of {len(found)}), "
              f"{changed:.1f} encoded features changed on average when found; one explanation takes "
              f"{single:.2f} ms (median), all {len(X)} test people {batch_s:.3f} s")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; returns the process exit code."""
    args = _arguments(argv)
    started = time.perf_counter()
    data = load_compas()
    X_train, X_test, y_train, y_test = data.split(0.2, seed=args.seed)
    print(f"COMPAS (the table shipped with the package): {len(X_train)} training and {len(X_test)} test people, "
          f"{X_train.shape[1]} encoded features; label 1: '{data.target_names[1]}'")
    print("1/3 training the classifier (a small PyTorch network; a few seconds)", flush=True)
    model = train_classifier(X_train, y_train, seed=args.seed)
    predict_fn = classifiers.numpy_predictor(model)
    accuracy = float((predict_fn(X_test).argmax(1) == y_test).mean())
    print(f"    test accuracy {accuracy:.3f}")
    print(WHITE_BOX_AND_BLACK_BOX)

    immutable = IMMUTABLE + ([] if args.allow_race else [n for n in data.feature_names if n.startswith("race=")])
    explainers = _fit_explainers(model, predict_fn, data, X_train, immutable, args)
    favourable = 1
    unfavourable = np.flatnonzero(predict_fn(X_test).argmax(1) != favourable)
    people = unfavourable[: args.people]
    _show_people(data, explainers, X_test, people, immutable, favourable)
    _show_summary(explainers, X_test, unfavourable, people, favourable)
    print(f"demo finished in {time.perf_counter() - started:.0f} s (after the imports)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
