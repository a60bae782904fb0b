"""Train the example deployment's models on the COMPAS table shipped with alibi-countergan, and save them.

Writes, under this folder (or ``--root``):

- ``classifier-server/compas-classifier/artefacts/model.joblib``: a scikit-learn classifier
  (label 1: did not reoffend), served by MLServer's scikit-learn runtime;
- ``explainer-server/compas-explainer/artefacts/explainer/``: a CounteRGAN fitted black-box on
  that classifier's ``predict_proba``, served by ``CounteRGANBlackBoxRuntime``, which calls the
  classifier's server;
- ``explainer-server/compas-explainer-whitebox/artefacts/``: a PyTorch classifier exported with
  ``torch.export`` (``classifier.pt2``) and a CounteRGAN fitted white-box on it (``explainer/``),
  served together by ``CounteRGANWhiteBoxRuntime``.

Run it from the repository root: ``python examples/serving/train.py`` (about a minute on two cores).
"""

import argparse
import time
from pathlib import Path
from typing import Optional, Sequence

import joblib
import torch
from sklearn.ensemble import GradientBoostingClassifier

from alibi_countergan import CounteRGAN
from alibi_countergan.datasets import load_compas
from alibi_countergan.demo import train_classifier

HERE = Path(__file__).resolve().parent

IMMUTABLE = ["age", "juv_fel_count", "juv_misd_count", "juv_other_count", "sex=Female", "sex=Male"]
"""Features the recourse may not touch (race is added below)."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Train and save the classifier and the two explainers; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=HERE, help="folder holding the two server folders")
    parser.add_argument("--train-steps", type=int, default=2000, help="training iterations of each explainer")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = load_compas()
    X_train, X_test, y_train, y_test = data.split(0.2, seed=args.seed)
    immutable = IMMUTABLE + [n for n in data.feature_names if n.startswith("race=")]
    common = dict(feature_names=data.feature_names, cat_vars=data.cat_vars, immutable_features=immutable,
                  monotone={"priors_count": "decreasing"}, target_class=[1], train_steps=args.train_steps,
                  seed=args.seed, verbose=False)
    shape = (1, X_train.shape[1])

    # black-box: a scikit-learn classifier served by MLServer, the explainer calls it over HTTP
    start = time.perf_counter()
    classifier = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=args.seed).fit(X_train, y_train)
    classifier_dir = args.root / "classifier-server" / "compas-classifier" / "artefacts"
    classifier_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(classifier, classifier_dir / "model.joblib")
    explainer = CounteRGAN(classifier.predict_proba, shape, method="black-box", **common).fit(X_train)
    explainer.save(args.root / "explainer-server" / "compas-explainer" / "artefacts" / "explainer")
    print(f"black-box: classifier test accuracy {classifier.score(X_test, y_test):.3f}; explainer fitted and saved in "
          f"{time.perf_counter() - start:.1f} s")

    # white-box: a PyTorch classifier exported beside the explainer, trained through its gradients
    start = time.perf_counter()
    model = train_classifier(X_train, y_train, seed=args.seed)
    whitebox_dir = args.root / "explainer-server" / "compas-explainer-whitebox" / "artefacts"
    whitebox_dir.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (torch.as_tensor(X_train[:2]),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(whitebox_dir / "classifier.pt2"))
    with torch.no_grad():
        accuracy = float((model(torch.as_tensor(X_test)).argmax(1).numpy() == y_test).mean())  # type: ignore[operator]
    explainer = CounteRGAN(model, shape, method="white-box", **common).fit(X_train)
    explainer.save(whitebox_dir / "explainer")
    print(f"white-box: classifier test accuracy {accuracy:.3f}; explainer fitted and saved in "
          f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
