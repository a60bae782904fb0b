"""Write the saved explainers of alibi-countergan 0.1.0 (save format 1) that ``tests/test_old_saves.py`` loads.

Run once, with the code of release 0.1.0 (commit 4396c01), from the repository root:

    PYTHONPATH=$PWD python tests/data/saved-0.1.0/make_saves.py

It is kept to show how the files were made; running it with a later release would write that release's
format instead, which is not what the test is for. It writes, next to itself:

``classifiers.npz``
    The weights of two small PyTorch classifiers (``{pima,compas}/{0,2}.{weight,bias}`` of
    ``Linear(d, 16), ReLU, Linear(16, 2), Softmax``; the inputs' standardisation is folded into the first layer).
``compas-white-box/``
    A white-box explainer (``method='auto'``) on COMPAS with names, one-hot groups (``cat_vars``), immutable,
    monotone and ordinal features given by index and by name, a feature range as arrays, a list
    ``target_class`` and ``real_weight_power=inf``.
``pima-black-box/``
    A black-box explainer on Pima with custom networks (``MLPGenerator`` and ``MLPDiscriminator`` with one
    hidden layer of :data:`SMALL` units), immutable and ordinal features.
``expected.npz``
    The inputs (``{name}/X``) and, per target, the counterfactuals the saved explainers gave
    (``{name}/{target}/{X,class,proba}``). The generator's own output (``{name}/{target}/raw/{X,class,proba}``,
    ``explain(..., refine=False)``) was added afterwards with the same release, by loading these saves and
    explaining the same inputs again (its refined output was checked to be reproduced first).
"""

import sys
from pathlib import Path
from typing import Any, Callable, Dict

import numpy as np
import torch
from torch import nn

from alibi_countergan import CounteRGAN
from alibi_countergan.backends.pytorch import MLPDiscriminator, MLPGenerator
from alibi_countergan.datasets import load_compas, load_pima

HERE = Path(__file__).resolve().parent
TARGETS = ("other", 1)
SMALL = (32,)
"""Hidden layers of the black-box explainer's custom networks (small, so the files are too)."""


def classifier(X: np.ndarray, y: np.ndarray) -> nn.Sequential:
    """A softmax MLP trained on standardised inputs, with the standardisation folded into its first layer."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(X.shape[1], 16), nn.ReLU(), nn.Linear(16, 2), nn.Softmax(dim=-1))
    mean, std = X.mean(axis=0), np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    xs, yt = torch.as_tensor((X - mean) / std, dtype=torch.float32), torch.as_tensor(y)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(30):
        for batch in np.array_split(rng.permutation(len(X)), len(X) // 64):
            optimiser.zero_grad()
            nn.functional.nll_loss(torch.log(model(xs[batch]) + 1e-7), yt[batch]).backward()
            optimiser.step()
    with torch.no_grad():
        first = model[0]
        first.weight /= torch.as_tensor(std, dtype=torch.float32)
        first.bias -= first.weight @ torch.as_tensor(mean, dtype=torch.float32)
    return model.eval()


def numpy_fn(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out: np.ndarray = model(torch.as_tensor(x, dtype=torch.float32)).numpy()
        return out

    return predict


def main() -> None:
    torch.set_num_threads(1)
    pima, compas = load_pima(), load_compas()
    weights: Dict[str, np.ndarray] = {}
    expected: Dict[str, np.ndarray] = {}
    models = {}
    for name, data in (("pima", pima), ("compas", compas)):
        X_train, _, y_train, _ = data.split(0.2, seed=0)
        models[name] = classifier(X_train, y_train)
        weights.update({f"{name}/{k}": v.numpy() for k, v in models[name].state_dict().items()})
    explainers: Dict[str, Any] = {}
    X_compas, X_compas_test, _, _ = compas.split(0.2, seed=0)
    explainers["compas-white-box"] = (CounteRGAN(
        models["compas"], (1, X_compas.shape[1]), cat_vars=compas.cat_vars, feature_names=compas.feature_names,
        immutable_features=["sex", 0], monotone={"priors_count": "increasing", 2: -1},
        ordinal_features={"juv_fel_count": [0.0, 1.0, 2.0, 5.0, 10.0]},
        feature_range=(np.zeros(X_compas.shape[1], dtype=np.float32), X_compas.max(axis=0)),
        real_weight_power=float("inf"), target_class=[1], train_steps=80, batch_size=64, n_threads=1, seed=5,
        verbose=False), X_compas, X_compas_test[:24])
    X_pima, X_pima_test, _, _ = pima.split(0.2, seed=0)
    explainers["pima-black-box"] = (CounteRGAN(
        numpy_fn(models["pima"]), (1, 8), feature_names=pima.feature_names, immutable_features=["Pregnancies", 7],
        ordinal_features=["Age"], generator=MLPGenerator(8, 2, hidden=SMALL),
        discriminator=MLPDiscriminator(8, 2, hidden=SMALL), train_steps=80, batch_size=64, seed=6,
        verbose=False), X_pima, X_pima_test[:24])
    for name, (explainer, X_fit, X) in explainers.items():
        explainer.fit(X_fit)
        explainer.save(HERE / name)
        expected[f"{name}/X"] = X
        for target in TARGETS:
            e = explainer.explain(X, target_class=target)
            for key in ("X", "class", "proba"):
                expected[f"{name}/{target}/{key}"] = np.asarray(e.cf[key])
    np.savez(HERE / "classifiers.npz", **weights)
    np.savez(HERE / "expected.npz", **expected)
    print("wrote", sorted(p.name for p in HERE.iterdir()), file=sys.stderr)


if __name__ == "__main__":
    main()
