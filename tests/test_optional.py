"""PyTorch and TensorFlow are optional: the package works with either one alone.

In the full environment both are installed and the missing-framework tests run with the
framework hidden from the import system; the tox environments ``torch-only`` and ``tf-only``
install one framework and run these tests for real.
"""

import importlib.util
import re

import numpy as np
import pytest
from conftest import REPO

from alibi_countergan import CounteRGAN
from alibi_countergan.backends import BACKENDS, install_hint, installed, load_backend

EXTRAS = {"pytorch": "torch", "tensorflow": "tensorflow"}
MISSING = [name for name in BACKENDS if name not in installed()]


def _forest_fn(pima):
    from sklearn.ensemble import RandomForestClassifier

    _, X_train, _, y_train, _ = pima
    forest = RandomForestClassifier(n_estimators=30, min_samples_leaf=3, random_state=0).fit(X_train, y_train)
    return forest.predict_proba


@pytest.mark.skipif(not installed(), reason="no framework installed")
def test_a_plain_function_works_with_whichever_framework_is_installed(pima):
    _, X_train, X_test, _, _ = pima
    explainer = CounteRGAN(_forest_fn(pima), (1, 8), train_steps=300, verbose=False, seed=0).fit(X_train)
    assert explainer.backend == installed()[0] and not explainer.white_box
    explanation = explainer.explain(X_test, target_class=0)
    rows = explanation.orig_class != 0
    assert np.mean(explanation.success[rows]) > 0.5


def _check_missing(name, pima):
    command = re.escape(f'pip install -e ".[{EXTRAS[name]}]" -c constraints.txt')
    with pytest.raises(ImportError, match=command):
        load_backend(name)
    # at construction, not at fit: the explainer is never built
    with pytest.raises(ImportError, match=rf"The {name} backend needs .*{command}"):
        CounteRGAN(_forest_fn(pima), (1, 8), backend=name, train_steps=5, verbose=False)


@pytest.mark.parametrize("extra", sorted(EXTRAS.values()))
def test_the_import_errors_install_command_is_the_readmes(extra):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"`(pip install [^`]+)`", install_hint(extra))
    assert len(commands) == 2  # from a clone, and from the repository's URL
    for command in commands:
        assert command in readme, f"the ImportError's command {command!r} is not the README's"


@pytest.mark.parametrize("name", MISSING or [pytest.param(None, marks=pytest.mark.skip("every framework is here"))])
def test_a_missing_framework_raises_an_import_error_naming_the_extra(name, pima):
    _check_missing(name, pima)


@pytest.mark.parametrize("name", BACKENDS)
def test_a_hidden_framework_raises_an_import_error_naming_the_extra(name, pima, monkeypatch):
    # the same check where the framework is installed, with it hidden from the import system
    real = importlib.util.find_spec
    framework = {"pytorch": "torch", "tensorflow": "tensorflow"}[name]
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == framework else real(n, *a))
    assert name not in installed()
    _check_missing(name, pima)
    if installed():  # a plain function then takes the framework that is left
        assert CounteRGAN(_forest_fn(pima), (1, 8)).backend == installed()[0] != name
    else:
        with pytest.raises(ImportError, match="needs PyTorch or TensorFlow"):
            CounteRGAN(_forest_fn(pima), (1, 8))
