"""Train the example deployment's models on the COMPAS table shipped with alibi-countergan, and save them.

Writes, under this folder (or ``--root``):

- ``classifier-server/compas-classifier/artefacts/model.joblib``: a scikit-learn ``Pipeline`` on the raw
  table (one-hot encoding of the string columns, then gradient boosting; label 1: did not reoffend),
  served by MLServer's scikit-learn runtime, which decodes pandas-codec requests into DataFrames;
- ``explainer-server/compas-explainer/artefacts/explainer/``: a CounteRGAN fitted black-box on that
  Pipeline and the raw DataFrame (named, typed columns), served by ``CounteRGANBlackBoxRuntime``, which
  calls the classifier's server with pandas-codec requests;
- ``explainer-server/compas-explainer-whitebox/artefacts/``: a PyTorch classifier of the one-hot encoded
  table exported with ``torch.export`` (``classifier.pt2``) and a CounteRGAN fitted white-box on it
  (``explainer/``), served together by ``CounteRGANWhiteBoxRuntime`` (numeric arrays in).

Run it from the repository root: ``python examples/serving/train.py`` (a few minutes on two cores).
"""

import argparse
import time
from pathlib import Path
from typing import Optional, Sequence

import joblib
import torch
from compas_table import CATEGORICAL, split
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from alibi_countergan import CounteRGAN
from alibi_countergan.datasets import load_compas
from alibi_countergan.demo import train_classifier

HERE = Path(__file__).resolve().parent

IMMUTABLE = ["age", "juv_fel_count", "juv_misd_count", "juv_other_count", "sex", "race"]
"""Columns the recourse may not touch (a categorical column by its name)."""


def classifier_pipeline(seed: int = 0) -> Pipeline:
    """The classifier: the raw columns in, the string columns one-hot encoded, gradient boosting."""
    encode = ColumnTransformer([("categories", OneHotEncoder(handle_unknown="error"), CATEGORICAL)],
                               remainder="passthrough")
    return Pipeline([("encode", encode),
                     ("model", HistGradientBoostingClassifier(max_iter=100, random_state=seed))])


def train_black_box(root: Path, train_steps: int, seed: int) -> None:
    """The Pipeline on the raw table, and a CounteRGAN fitted black-box on it with the raw DataFrame."""
    start = time.perf_counter()
    X_train, X_test, y_train, y_test = split(seed)
    classifier = classifier_pipeline(seed).fit(X_train, y_train)
    classifier_dir = root / "classifier-server" / "compas-classifier" / "artefacts"
    classifier_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(classifier, classifier_dir / "model.joblib")
    # the DataFrame's columns are the features: integer columns stay whole, string columns categorical
    explainer = CounteRGAN(classifier, shape=(1, X_train.shape[1]), method="black-box", immutable_features=IMMUTABLE,
                           monotone={"priors_count": "decreasing"}, target_class=[1], train_steps=train_steps,
                           seed=seed, verbose=False).fit(X_train)
    explainer.save(root / "explainer-server" / "compas-explainer" / "artefacts" / "explainer")
    print(f"black-box: Pipeline test accuracy {classifier.score(X_test, y_test):.3f}; explainer fitted on the raw "
          f"table and saved in {time.perf_counter() - start:.1f} s")


def train_white_box(root: Path, train_steps: int, seed: int) -> None:
    """A PyTorch classifier of the one-hot encoded table, exported, and a CounteRGAN fitted through its gradients."""
    start = time.perf_counter()
    data = load_compas()
    X_train, X_test, y_train, y_test = data.split(0.2, seed=seed)
    model = train_classifier(X_train, y_train, seed=seed)
    whitebox_dir = root / "explainer-server" / "compas-explainer-whitebox" / "artefacts"
    whitebox_dir.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (torch.as_tensor(X_train[:2]),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(whitebox_dir / "classifier.pt2"))
    with torch.no_grad():
        accuracy = float((model(torch.as_tensor(X_test)).argmax(1).numpy() == y_test).mean())  # type: ignore[operator]
    immutable = [name for name in data.feature_names if name.split("=")[0] in IMMUTABLE]
    explainer = CounteRGAN(model, (1, X_train.shape[1]), method="white-box", feature_names=data.feature_names,
                           cat_vars=data.cat_vars, immutable_features=immutable,
                           monotone={"priors_count": "decreasing"},
                           ordinal_features=["priors_count", "days_b_screening_arrest"],  # counts stay whole
                           target_class=[1], train_steps=train_steps, seed=seed, verbose=False).fit(X_train)
    explainer.save(whitebox_dir / "explainer")
    print(f"white-box: classifier test accuracy {accuracy:.3f}; explainer fitted and saved in "
          f"{time.perf_counter() - start:.1f} s")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Train and save the classifiers and the two explainers; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=HERE, help="folder holding the two server folders")
    parser.add_argument("--train-steps", type=int, default=2000, help="training iterations of each explainer")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train_black_box(args.root, args.train_steps, args.seed)
    train_white_box(args.root, args.train_steps, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
