"""The main job: recourse on the shipped COMPAS table, white-box and black-box, in a few minutes on a CPU.

Run it with ``python -m alibi_countergan`` or ``countergan-demo``. It trains a small PyTorch
classifier (label 1: did not reoffend), fits CounteRGAN white-box (through the classifier's
gradients) and black-box (through a numpy prediction function only), and prints, for a handful
of people the classifier expects to reoffend, what each counterfactual proposes to change and
the probabilities before and after, like Table 4 of the paper, with the time one explanation took.
"""

import argparse
import time
from typing import Callable, Dict, Optional, Sequence, Union

import numpy as np

from alibi_countergan.datasets import TabularData, load_compas

IMMUTABLE = ["age", "juv_fel_count", "juv_misd_count", "juv_other_count", "sex=Female", "sex=Male"]
"""Features the recourse may not touch in the demo (race is added by ``--allow-race``'s absence)."""


def train_classifier(X: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 30) -> "object":
    """A 3-hidden-layer PyTorch MLP on raw COMPAS features (standardisation is its first layer)."""
    import torch
    from torch import nn

    class Standardise(nn.Module):
        def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
            super().__init__()
            self.register_buffer("mean", torch.as_tensor(mean))
            self.register_buffer("std", torch.as_tensor(np.where(std > 0, std, 1.0).astype(np.float32)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mean, std = self.mean, self.std
            assert isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor)
            return (x - mean) / std

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(Standardise(X.mean(0), X.std(0)), nn.Linear(X.shape[1], 32), nn.ReLU(),
                              nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 2),
                              nn.Softmax(dim=-1))
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
        xt, yt = torch.as_tensor(X), torch.as_tensor(y)
        order = np.random.default_rng(seed)
        for _ in range(epochs):
            for batch in np.array_split(order.permutation(len(X)), max(1, len(X) // 128)):
                optimiser.zero_grad()
                loss = nn.functional.nll_loss(torch.log(model(xt[batch]) + 1e-7), yt[batch])
                loss.backward()
                optimiser.step()
    model.eval()
    return model


def _format_change(before: Union[float, str], after: Union[float, str]) -> str:
    if isinstance(before, str) or isinstance(after, str):
        return "-" if before == after else f"{after}"
    delta = float(after) - float(before)
    return "-" if abs(delta) < 1e-6 else f"{delta:+.0f}" if float(before).is_integer() else f"{delta:+.2f}"


def print_table(data: TabularData, originals: np.ndarray, columns: Dict[str, np.ndarray],
                before: np.ndarray, after: Dict[str, np.ndarray], favourable: int) -> None:
    """Print one person's original values and each method's proposed changes (Table 4 of the paper)."""
    rows = data.describe(originals)
    described = {name: data.describe(cf) for name, cf in columns.items()}
    width = max(len(k) for k in rows) + 2
    header = f"{'feature':<{width}}{'original':>12}" + "".join(f"{name:>14}" for name in columns)
    print(header)
    print("-" * len(header))
    for feature, value in rows.items():
        shown = value if isinstance(value, str) else f"{value:g}"
        cells = "".join(f"{_format_change(value, described[n][feature]):>14}" for n in columns)
        print(f"{feature:<{width}}{shown:>12}{cells}")
    label = f"P({data.target_names[favourable]})"
    print(f"{label:<{width}}{before[favourable]:>12.2f}" + "".join(f"{after[n][favourable]:>14.2f}" for n in columns))


def _median_ms(fn: Callable[[], object], repeats: int = 50) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def _one_call(explainer: "object", x: np.ndarray, target: int) -> Callable[[], object]:
    def call() -> object:
        return explainer.explain(x, target_class=target)  # type: ignore[attr-defined]

    return call


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--people", type=int, default=4, help="how many people to show")
    parser.add_argument("--steps", type=int, default=2000, help="training iterations of each explainer")
    parser.add_argument("--allow-race", action="store_true",
                        help="let counterfactuals change race (to probe the classifier for bias)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from alibi_countergan import CounteRGAN

    torch.set_num_threads(min(4, torch.get_num_threads()))
    data = load_compas()
    X_train, X_test, y_train, y_test = data.split(0.2, seed=args.seed)
    print(f"COMPAS (shipped table): {len(X_train)} training and {len(X_test)} test people, "
          f"{X_train.shape[1]} encoded features")
    model = train_classifier(X_train, y_train, seed=args.seed)

    def predict_fn(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.as_tensor(x, dtype=torch.float32)).numpy()  # type: ignore[operator]

    accuracy = float((predict_fn(X_test).argmax(1) == y_test).mean())
    print(f"classifier: test accuracy {accuracy:.3f}\n")

    immutable = IMMUTABLE + ([] if args.allow_race else [n for n in data.feature_names if n.startswith("race=")])
    common = dict(feature_names=data.feature_names, cat_vars=data.cat_vars, immutable_features=immutable,
                  monotone={"priors_count": "decreasing"},
                  ordinal_features=["priors_count", "days_b_screening_arrest"], train_steps=args.steps,
                  seed=args.seed, verbose=False)
    explainers = {}
    for name, predictor, method in (("white-box", model, "white-box"), ("black-box", predict_fn, "black-box")):
        start = time.perf_counter()
        explainers[name] = CounteRGAN(predictor, (1, X_train.shape[1]), method=method, **common).fit(X_train)
        print(f"fitted {name} CounteRGAN in {time.perf_counter() - start:.1f} s")

    favourable = 1
    unfavourable = np.flatnonzero(predict_fn(X_test).argmax(1) != favourable)
    people = unfavourable[: args.people]
    explanations = {name: e.explain(X_test[people], target_class=favourable) for name, e in explainers.items()}
    print(f"\nRecourse for {len(people)} people predicted to reoffend (target: '{data.target_names[favourable]}'); "
          f"'-' means unchanged; immutable: {', '.join(immutable)}; priors_count may only decrease; "
          f"counts stay whole numbers.\n")
    for i, person in enumerate(people):
        print(f"person #{person}")
        print_table(data, X_test[person], {n: e.cf["X"][i] for n, e in explanations.items()},
                    explanations["white-box"].orig_proba[i], {n: e.cf["proba"][i] for n, e in explanations.items()},
                    favourable)
        print()

    print("On all test people predicted to reoffend:")
    for name, explainer in explainers.items():
        batch = explainer.explain(X_test[unfavourable], target_class=favourable)
        changed = (np.abs(batch.residual) > 1e-6).sum(1).mean()
        single = _median_ms(_one_call(explainer, X_test[people[:1]], favourable))
        start = time.perf_counter()
        explainer.explain(X_test, target_class=favourable)
        batch_s = time.perf_counter() - start
        print(f"  {name}: {batch.success.mean():.1%} turned favourable, {changed:.1f} features changed on average; "
              f"one explanation takes {single:.2f} ms (median), all {len(X_test)} test people {batch_s:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
