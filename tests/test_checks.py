"""Every bad input gets a clear exception, and inputs are never modified."""

import re

import numpy as np
import pytest

from alibi_countergan import CounteRGAN
from alibi_countergan.features import check_onehot
from alibi_countergan.testing import changed_entries


def test_explain_before_fit_is_a_runtime_error(pima, pima_model):
    _, _, X_test, _, _ = pima
    with pytest.raises(RuntimeError, match="not fitted"):
        CounteRGAN(pima_model, (1, 8), verbose=False).explain(X_test[:1])


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, 7), dtype=np.float32), "shape"),
    (np.zeros((3, 8, 1), dtype=np.float32), "shape"),
    (np.zeros((0, 8), dtype=np.float32), "empty"),
    (np.array([["a"] * 8]), "numbers"),
    (np.array([[1 + 2j] * 8]), "real numbers"),
])
def test_explain_rejects_malformed_instances(pima_whitebox, bad, message):
    with pytest.raises(ValueError, match=message):
        pima_whitebox.explain(bad)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_rejected_with_their_position(pima, pima_whitebox, value):
    _, _, X_test, _, _ = pima
    x = X_test[:3].copy()
    x[1, 4] = value
    with pytest.raises(ValueError, match=r"NaN or infinite values \(first at row 1, flat feature 4\)"):
        pima_whitebox.explain(x)
    with pytest.raises(ValueError, match="NaN or infinite"):
        CounteRGAN(pima_whitebox.predictor, (1, 8), verbose=False, train_steps=1).fit(x)


@pytest.mark.parametrize("target, message", [
    (2, "class 2 is out of range"),
    (-1, "class -1 is out of range"),
    ([0, 5], "class 5 is out of range"),
    ("same", "not supported"),
    (1.5, "class index"),
    ([], "class index"),
    (True, "class index"),
    ([0, 1, 0], "3 entries for 2 instances"),
    (2 ** 70, f"class {2 ** 70} is out of range"),
    ([0, -2 ** 70], f"class {-2 ** 70} is out of range"),
])
def test_bad_targets_are_rejected(pima, pima_whitebox, target, message):
    _, _, X_test, _, _ = pima
    with pytest.raises(ValueError, match=message):
        pima_whitebox.explain(X_test[:2], target_class=target)


def test_bad_constructor_target_is_rejected_early(pima_model):
    with pytest.raises(ValueError, match="not supported"):
        CounteRGAN(pima_model, (1, 8), target_class="worse")
    with pytest.raises(ValueError, match="out of range"):
        CounteRGAN(pima_model, (1, 8), target_class=2 ** 70)


class _Counting:
    """A black-box predictor (a logistic model on the first feature) that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        p = 1 / (1 + np.exp(-np.clip(np.asarray(x, np.float64)[:, 1] - 120, -50, 50) / 20))
        return np.stack([1 - p, p], axis=1)


@pytest.mark.parametrize("value", [1e20, -3e38])
def test_fit_values_beyond_float32_networks_are_a_value_error_naming_the_column(pima, value):
    data, X_train, _, _, _ = pima
    X = X_train.astype(np.float64)
    X[5, 4] = value
    before = X.copy()
    predictor = _Counting()
    explainer = CounteRGAN(predictor, (1, 8), feature_names=data.feature_names, verbose=False, train_steps=2)
    shown = re.escape(f"{value:.6g}")
    with pytest.raises(ValueError, match=f"column 4 \\('{data.feature_names[4]}'\\) holds {shown} \\(row 5\\); "
                                         f"the networks compute in float32"):
        explainer.fit(X)
    assert predictor.calls == 0 and np.array_equal(X, before)


def test_a_fit_column_float32_cannot_resolve_is_named(pima):
    _, X_train, _, _, _ = pima
    X = X_train.astype(np.float64)
    X[:, 2] = 1e9 + np.arange(len(X)) % 3  # e.g. an identifier offset by a large constant
    with pytest.raises(ValueError, match="column 2 has values around 1e\\+09 that vary by only 0.8.*float32 cannot"):
        CounteRGAN(_Counting(), (1, 8), verbose=False, train_steps=2).fit(X)


@pytest.mark.parametrize("value", [3e38, -1e16, 5e9])
def test_explain_values_far_outside_the_fit_data_are_named_before_any_network_runs(pima, value):
    data, X_train, X_test, _, _ = pima
    predictor = _Counting()
    explainer = CounteRGAN(predictor, (1, 8), feature_names=data.feature_names, verbose=False,
                           train_steps=2).fit(X_train)
    X = X_test[:3].astype(np.float64 if abs(value) > 3e38 else np.float32)
    X[1, 6] = value
    calls = predictor.calls
    shown = re.escape(f"{value:.6g}")
    for target in (1, "other"):
        with pytest.raises(ValueError, match=f"column 6 \\('{data.feature_names[6]}'\\) holds {shown} \\(row 1\\)"):
            explainer.explain(X, target_class=target)
    assert predictor.calls == calls


def _logits(x):
    return np.stack([x.sum(1), -x.sum(1)], axis=1)


@pytest.mark.parametrize("predictor, message", [
    (_logits, "outside \\[0, 1\\]"),
    (lambda x: np.full((len(x), 2), 0.2), "sum to 1"),
    (lambda x: np.ones((len(x), 1)), "at least two classes"),
    (lambda x: np.zeros(len(x)), "matrix of class probabilities"),
    (lambda x: np.full((len(x), 2), np.nan), "NaN"),
    (lambda x: np.full((len(x) + 1, 2), 0.5), "matrix of class probabilities"),
])
def test_predictor_that_does_not_return_probabilities_is_rejected(pima, predictor, message):
    _, X_train, _, _, _ = pima
    with pytest.raises(ValueError, match=message):
        CounteRGAN(predictor, (1, 8), verbose=False, train_steps=1).fit(X_train)


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "grey-box"}, "method"),
    ({"backend": "jax"}, "backend"),
    ({"train_steps": 0}, "train_steps"),
    ({"batch_size": 1.5}, "batch_size"),
    ({"learning_rate": 0}, "learning_rate"),
    ({"l1_weight": -1.0}, "l1_weight"),
    ({"l2_weight": float("nan")}, "l2_weight"),
    ({"seed": "zero"}, "seed"),
    ({"feature_names": ["a", "b"]}, "feature_names"),
    ({"immutable_features": [8]}, "out of range"),
    ({"monotone": {0: "sideways"}}, "direction"),
    ({"cat_vars": {6: 3}}, "runs past"),
    ({"feature_range": (0.0,)}, "feature_range"),
    ({"callbacks": [3]}, "callbacks"),
    ({"seed": -1}, "seed"),
    ({"verbose": "no"}, "verbose must be True or False"),
    ({"residual": 0}, "residual must be True or False"),
    ({"ohe": None}, "ohe must be True or False"),
    ({"data_format": "channels_middle"}, "data_format='channels_middle'"),
])
def test_bad_parameters_are_rejected(pima_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        CounteRGAN(pima_model, (1, 8), **kwargs)


@pytest.mark.parametrize("shape", [(1, 0), "8", (1, -3), (1.0, 8)])
def test_bad_shape_is_rejected(pima_model, shape):
    with pytest.raises(ValueError, match="shape"):
        CounteRGAN(pima_model, shape)


def test_feature_range_with_lower_above_upper_is_rejected(pima, pima_model):
    _, X_train, _, _, _ = pima
    with pytest.raises(ValueError, match="exceeds the upper bound"):
        CounteRGAN(pima_model, (1, 8), feature_range=(np.ones(8), np.zeros(8)), train_steps=1,
                   verbose=False).fit(X_train)


def test_white_box_request_needs_a_differentiable_model(backend, pima_model):
    with pytest.raises(ValueError, match=f"white-box.*{backend.whitebox_type}.*black-box"):
        CounteRGAN(backend.numpy_fn(pima_model), (1, 8), backend=backend.name, method="white-box")


def test_invalid_one_hot_data_is_rejected(compas, compas_model):
    data, X_train, X_test, _, _ = compas
    broken = X_train.copy()
    start = next(iter(data.cat_vars))
    broken[5, start:start + 2] = 1.0
    with pytest.raises(ValueError, match="row 5 has an invalid one-hot encoding"):
        CounteRGAN(compas_model, (1, X_train.shape[1]), cat_vars=data.cat_vars, train_steps=1,
                   verbose=False).fit(broken)


def test_one_hot_check_names_the_first_broken_group_and_row(compas):
    data, X_train, _, _, _ = compas
    groups = tuple((int(start), int(start) + int(size)) for start, size in sorted(data.cat_vars.items()))
    check_onehot(X_train, groups, "X")  # the real table passes
    assert len(groups) >= 2
    (_, _), (second, second_stop) = groups[0], groups[1]
    broken = X_train.copy()
    broken[7, second:second_stop] = 0.0  # no category at all in the second group
    broken[9, second:second_stop] = 0.0
    broken[9, second] = 0.5  # a fractional one
    message = rf"X: row 7 has an invalid one-hot encoding in columns {second}:{second_stop}"
    with pytest.raises(ValueError, match=message):
        check_onehot(broken, groups, "X")
    broken[7] = X_train[7]
    with pytest.raises(ValueError, match=rf"row 9 .* columns {second}:{second_stop} \(\[0.5"):
        check_onehot(broken, groups, "X")
    first, first_stop = groups[0]
    broken[12, first:first_stop] = 1.0  # every category of the first group: reported before the second's row 9
    with pytest.raises(ValueError, match=rf"row 12 .* columns {first}:{first_stop}"):
        check_onehot(broken, groups, "X")


def test_inputs_are_never_modified(backend, pima):
    _, X_train, X_test, y_train, _ = pima
    # batch normalisation and dropout: the predictor must be called in inference mode throughout
    model = backend.train(backend.mlp(8, 2, X_train, batchnorm=True), X_train, y_train, epochs=3)
    train_copy, test_copy = X_train.copy(), X_test.copy()
    lower, upper = X_train.min(0) - 1, X_train.max(0) + 1
    bounds = (lower.copy(), upper.copy())
    before = backend.state(model)
    explainer = CounteRGAN(model, (1, 8), feature_range=(lower, upper), train_steps=20, verbose=False)
    assert explainer.white_box
    explainer.fit(X_train)
    targets = np.array([0, 1, 1])
    explainer.explain(X_test[:3], target_class=targets)
    np.testing.assert_array_equal(X_train, train_copy)
    np.testing.assert_array_equal(X_test, test_copy)
    np.testing.assert_array_equal(targets, [0, 1, 1])
    np.testing.assert_array_equal(lower, bounds[0])
    np.testing.assert_array_equal(upper, bounds[1])
    changed = changed_entries(before, backend.state(model))
    assert not changed, f"fit or explain changed the predictor: {changed}"


class _SklearnLike:
    """A model object whose bound method returns probabilities (as scikit-learn's predict_proba)."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-np.clip(np.asarray(x, np.float64)[:, 1] - 120, -50, 50) / 20))
        return np.stack([1 - p, p], axis=1)


def test_white_box_with_a_bound_method_names_it(backend):
    with pytest.raises(ValueError, match=r"must be .*, got the bound method _SklearnLike.predict_proba\. Use "
                                         r"method='black-box'"):
        CounteRGAN(_SklearnLike().predict_proba, (1, 8), backend=backend.name, method="white-box")
    with pytest.raises(ValueError, match=r"got the function _logits\. Use method='black-box'"):
        CounteRGAN(_logits, (1, 8), backend=backend.name, method="white-box")


def test_a_loaded_explainer_probes_its_predictor_at_load(pima, tmp_path):
    _, X_train, _, _, _ = pima
    explainer = CounteRGAN(_SklearnLike().predict_proba, (1, 8), verbose=False, train_steps=2).fit(X_train)
    explainer.save(tmp_path / "saved")
    calls = []

    def three_classes(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return np.full((len(x), 3), 1 / 3)

    with pytest.raises(ValueError, match="checked on one instance at load time.*has 3 classes but the explainer was "
                                         "fitted with 2"):
        CounteRGAN.load(tmp_path / "saved", three_classes)
    assert calls == [1]
    loaded = CounteRGAN.load(tmp_path / "saved", _SklearnLike().predict_proba)
    assert np.array_equal(loaded.explain(X_train[:5]).cf["X"], explainer.explain(X_train[:5]).cf["X"])
