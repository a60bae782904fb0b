"""Validity, L1 and constraint violations with and without actionability constraints (issue 4's figures).

Usage::

    python benchmarks/constraints.py [--steps 2000]

For Pima (immutable: pregnancies, pedigree function, age) and COMPAS (immutable: race, sex, age;
categoricals one-hot; priors_count may only decrease), a small PyTorch classifier is trained and
CounteRGAN is fitted white-box and black-box twice: with the constraints and without them. Every
counterfactual of the test set is checked against the constraint set; the unconstrained rows show
how often a method that ignores the constraints would break them. Both tables are the copies
shipped with the package.
"""

import argparse
import time
from typing import Dict, Sequence

import numpy as np
import torch

from alibi_countergan import CounteRGAN, classifiers
from alibi_countergan.datasets import TabularData, load_compas, load_pima
from alibi_countergan.metrics import violations


def run(name: str, data: TabularData, constraints: Dict, hidden: Sequence[int], epochs: int, steps: int,
        favourable: int) -> None:
    X_train, X_test, y_train, y_test = data.split(0.2, seed=0)
    model = classifiers.train(classifiers.mlp(X_train, 2, hidden), X_train, y_train, epochs=epochs, learning_rate=1e-3)
    predict_fn = classifiers.numpy_predictor(model)

    accuracy = (predict_fn(X_test).argmax(1) == y_test).mean()
    rows = predict_fn(X_test).argmax(1) != favourable
    spread = np.where(X_train.std(0) > 0, X_train.std(0), 1.0)
    print(f"\n{name}: {len(X_train)} train / {len(X_test)} test, classifier accuracy {accuracy:.3f}; explaining the "
          f"{rows.sum()} test rows predicted '{data.target_names[1 - favourable]}' towards "
          f"'{data.target_names[favourable]}'")
    print(f"constraints: {constraints}")
    print(f"{'method':<11}{'constraints':<13}{'validity':>9}{'L1':>9}{'L1 (sd)':>9}{'L0':>6}{'violations':>12}"
          f"{'  (immutable/monotone/range/one-hot/ordinal)':<44}{'fit s':>7}")
    reference = None
    for constrained in (True, False):
        for method, predictor in (("white-box", model), ("black-box", predict_fn)):
            kwargs = dict(constraints) if constrained else {"cat_vars": data.cat_vars} if data.cat_vars else {}
            start = time.perf_counter()
            explainer = CounteRGAN(predictor, (1, X_train.shape[1]), method=method, feature_names=data.feature_names,
                                   train_steps=steps, verbose=False, **kwargs).fit(X_train)
            fit_s = time.perf_counter() - start
            if constrained and reference is None:
                reference = explainer.space_  # the constraint set every method is checked against
            e = explainer.explain(X_test[rows], target_class=favourable)
            delta = e.cf["X"] - X_test[rows]
            assert reference is not None
            counts = violations(X_test[rows], e.cf["X"], reference)
            per_kind = "/".join(str(int((v > 0).sum())) for v in counts.values())
            broken = int((sum(counts.values()) > 0).sum())
            print(f"{method:<11}{'with' if constrained else 'without':<13}{np.mean(e.success):>9.3f}"
                  f"{np.abs(delta).sum(1).mean():>9.2f}{(np.abs(delta) / spread).sum(1).mean():>9.2f}"
                  f"{(np.abs(delta) > 1e-6).sum(1).mean():>6.1f}{broken:>12}{'  ' + per_kind:<44}{fit_s:>7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=min(2, torch.get_num_threads()), help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pima = load_pima()
    run("Pima diabetes", pima,
        {"immutable_features": ["Pregnancies", "DiabetesPedigreeFunction", "Age"]},
        hidden=(20, 20), epochs=60, steps=args.steps, favourable=0)

    compas = load_compas()
    race_sex = [n for n in compas.feature_names if n.startswith(("race=", "sex="))]
    run("COMPAS", compas,
        {"immutable_features": ["age"] + race_sex, "cat_vars": compas.cat_vars,
         "monotone": {"priors_count": "decreasing"}, "ordinal_features": ["priors_count"]},
        hidden=(32, 32, 16), epochs=30, steps=args.steps, favourable=1)


if __name__ == "__main__":
    main()
