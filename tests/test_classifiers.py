"""The one PyTorch classifier recipe (alibi_countergan.classifiers): seeded, in place, and strict about its inputs."""

import importlib.util
import re

import numpy as np
import pytest

from alibi_countergan import classifiers
from alibi_countergan.backends import install_hint

torch = pytest.importorskip("torch")


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_depends_on_the_seed_alone_and_leaves_the_global_state(pima):
    _, X_train, X_test, y_train, y_test = pima
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    model = classifiers.mlp(X_train, 2)  # drawn from the global state; training draws from its seed only
    state = torch.random.get_rng_state()
    first = classifiers.train(model, X_train, y_train, epochs=40, n_threads=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.get_num_threads() == threads
    assert not first.training and all(p.grad is None for p in first.parameters())
    again = classifiers.train(classifiers.mlp(X_train, 2), X_train, y_train, epochs=40)
    other = classifiers.train(classifiers.mlp(X_train, 2), X_train, y_train, epochs=40, seed=1)
    a, b, c = _weights(first), _weights(again), _weights(other)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    predict = classifiers.numpy_predictor(first)
    proba = predict(X_test)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    assert np.mean(proba.argmax(1) == y_test) > 0.7  # Pima: about 0.75 for a small MLP


@pytest.mark.parametrize("call, message", [
    (lambda X, y: classifiers.mlp(X[:, 0], 2), "2-D array"),
    (lambda X, y: classifiers.mlp(X, 1), "n_classes"),
    (lambda X, y: classifiers.mlp(X, 2, hidden=()), "hidden"),
    (lambda X, y: classifiers.mlp(X, 2, hidden=(8, 0)), "hidden"),
    (lambda X, y: classifiers.train(classifiers.mlp(X, 2), X, y.astype(float), epochs=1), "integer label"),
    (lambda X, y: classifiers.train(classifiers.mlp(X, 2), X, y[1:], epochs=1), "integer label"),
    (lambda X, y: classifiers.train(classifiers.mlp(X, 2), X, y, epochs=0), "epochs"),
    (lambda X, y: classifiers.train(classifiers.mlp(X, 2), X, y, epochs=1, batch_size=0), "batch_size"),
])
def test_bad_inputs_are_value_errors_naming_them(pima, call, message):
    _, X_train, _, y_train, _ = pima
    with pytest.raises(ValueError, match=message):
        call(X_train, y_train)


def test_the_predictor_takes_numpy_arrays_only(pima):
    _, X_train, _, _, _ = pima
    predict = classifiers.numpy_predictor(classifiers.mlp(X_train, 2).eval())
    with pytest.raises(TypeError, match="not a numpy array"):
        predict(torch.as_tensor(X_train[:2]))


def test_without_pytorch_the_import_error_names_the_extra(pima, monkeypatch):
    _, X_train, _, _, _ = pima
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else find_spec(name, *a))
    with pytest.raises(ImportError, match=re.escape(install_hint("torch"))):
        classifiers.mlp(X_train, 2)
