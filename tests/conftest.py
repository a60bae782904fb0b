"""Shared fixtures: real data sets, real classifiers and fitted explainers (trained once per session).

Every classifier and fitted explainer is parametrised over the installed backends through the
``backend`` fixture: a test that uses ``pima_model`` runs once with a PyTorch classifier (and the
PyTorch backend) and once with a Keras classifier (and the TensorFlow backend), both trained on
the same data with the same recipe. A framework that is not installed removes its parameter.
"""

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest

from alibi_countergan import CounteRGAN
from alibi_countergan.backends import installed
from alibi_countergan.datasets import TabularData, load_compas, load_pima
from alibi_countergan.testing import FRAMEWORKS, Framework, counting_calls

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
INSTALLED = installed()

if "pytorch" in INSTALLED:
    import torch

    # The networks here are small: on a shared two-core machine, torch's default of one OpenMP thread
    # per core makes training several times slower (threads spin while other processes hold the
    # cores), not faster. COUNTERGAN_TEST_TORCH_THREADS=0 keeps torch's default.
    _threads = int(os.environ.get("COUNTERGAN_TEST_TORCH_THREADS", "1"))
    if _threads > 0:
        torch.set_num_threads(_threads)


@pytest.fixture(scope="session", params=INSTALLED or [pytest.param(None, marks=pytest.mark.skip("no framework"))])
def backend(request) -> Framework:
    """The helper of one installed framework; tests using it run once per installed backend."""
    return FRAMEWORKS[request.param]()


@pytest.fixture
def count_predictor_calls(monkeypatch) -> Callable[[CounteRGAN], List[int]]:
    """``calls = count_predictor_calls(explainer)``: the rows of each predictor call ``explainer`` makes from then on
    are appended to ``calls`` (until the test ends)."""

    def install(explainer: CounteRGAN) -> List[int]:
        calls: List[int] = []
        monkeypatch.setattr(explainer, "_predict", counting_calls(explainer._predict, calls))
        return calls

    return install


@pytest.fixture(scope="session")
def pima() -> Tuple[TabularData, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_pima()  # shipped with the package: the tests read nothing outside the repository
    return (data,) + data.split(0.2, seed=0)


@pytest.fixture(scope="session")
def pima_model(backend, pima) -> Any:
    _, X_train, _, y_train, _ = pima
    return backend.train(backend.mlp(8, 2, X_train), X_train, y_train, epochs=40)


@pytest.fixture(scope="session")
def compas() -> Tuple[TabularData, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_compas()
    return (data,) + data.split(0.2, seed=0)


@pytest.fixture(scope="session")
def compas_model(backend, compas) -> Any:
    _, X_train, _, y_train, _ = compas
    return backend.train(backend.mlp(X_train.shape[1], 2, X_train), X_train, y_train, epochs=10)


@pytest.fixture(scope="session")
def digits() -> Dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)[..., None]  # (n, 8, 8, 1) in [0, 1]
    order = np.random.default_rng(0).permutation(len(images))
    train, test = order[:1400], order[1400:]
    return {"X_train": images[train], "y_train": d.target[train], "X_test": images[test], "y_test": d.target[test]}


@pytest.fixture(scope="session")
def digits_model(backend, digits) -> Any:
    return backend.train(backend.digits_net(), digits["X_train"], digits["y_train"], epochs=30)


@pytest.fixture(scope="session")
def pima_whitebox(pima, pima_model) -> CounteRGAN:
    _, X_train, _, _, _ = pima
    return CounteRGAN(pima_model, (1, 8), verbose=False, seed=0).fit(X_train)


@pytest.fixture(scope="session")
def digits_whitebox(digits, digits_model) -> CounteRGAN:
    return CounteRGAN(digits_model, (1, 8, 8, 1), train_steps=600, verbose=False, seed=0).fit(digits["X_train"])
