"""The quality measures of Table 1 (``alibi_countergan.metrics``), on real data and a real classifier."""

import math

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from alibi_countergan import metrics
from alibi_countergan.features import build_feature_space


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    model = LogisticRegression(max_iter=2000).fit(X[:1200], y[:1200])
    return X[1200:], y[1200:], model


def test_gain_and_validity_on_a_real_classifier(digits):
    X, y, model = digits
    fours = X[model.predict(X) == 4]
    x = X[np.flatnonzero(model.predict(X) != 4)[: len(fours)]]
    orig, same, moved = model.predict_proba(x), model.predict_proba(x), model.predict_proba(fours)
    assert np.allclose(metrics.prediction_gain(orig, same, 4), 0.0)
    assert not metrics.validity(same, 4).any()
    gain = metrics.prediction_gain(orig, moved, 4)
    assert gain.shape == (len(x),) and np.all(gain > 0)
    assert metrics.validity(moved, 4).all()
    # per-row targets: each row's own predicted class is valid, and its gain against itself is zero
    own = orig.argmax(axis=1)
    assert metrics.validity(orig, own).all()
    assert np.array_equal(metrics.target_probability(orig, own), orig.max(axis=1))


def test_realism_separates_data_from_noise(digits):
    X, _, _ = digits
    pca = PCA(n_components=20, random_state=0).fit(X)
    noise = np.random.default_rng(0).random(X.shape).astype(np.float32)
    data_error = metrics.reconstruction_error(X, pca.inverse_transform(pca.transform(X)))
    noise_error = metrics.reconstruction_error(noise, pca.inverse_transform(pca.transform(noise)))
    assert data_error.shape == (len(X),)
    assert data_error.mean() < 0.5 * noise_error.mean()
    # the norm of the difference, not its square or mean
    assert np.isclose(metrics.reconstruction_error(X[:1], X[:1] + 0.5)[0], 0.5 * math.sqrt(X.shape[1]))


def test_distances_count_what_changed(digits):
    X, _, _ = digits
    x = X[:10].reshape(10, 8, 8)  # any instance shape is flattened
    cf = x.copy()
    cf[:, 0, :3] += 0.25
    cf[:, 7, 7] -= 1.0
    assert np.allclose(metrics.l1_distance(x, cf), 1.75)
    assert np.array_equal(metrics.l0_distance(x, cf), np.full(10, 4))
    assert np.array_equal(metrics.changed_features(x, cf, [0, 1, 63, 20]), np.full(10, 3))
    assert np.array_equal(metrics.l0_distance(x, x + 1e-9), np.zeros(10))
    assert x[0, 0, 0] == X[0, 0]  # inputs untouched


def test_changed_variables_count_a_switched_category_once(compas):
    data, X_train, X_test, _, _ = compas
    groups = [list(range(start, start + n)) for start, n in sorted(data.cat_vars.items())]
    race = next(g for g in groups if data.feature_names[g[0]].startswith("race="))
    sex = next(g for g in groups if data.feature_names[g[0]].startswith("sex="))
    x = X_test[:40].astype(np.float64)
    cf = x.copy()
    cf[:, 0] += 1.0  # a numerical column: no category changed
    assert np.array_equal(metrics.changed_variables(x, cf, groups), np.zeros(40))
    # rows 0..9 switch race (two columns, one variable); rows 5..14 also switch sex
    cf[:10, race] = np.roll(x[:10, race], 1, axis=1)
    cf[5:15, sex] = x[5:15, sex][:, ::-1]
    assert np.array_equal(metrics.changed_variables(x, cf, groups), np.r_[np.ones(5), 2 * np.ones(5), np.ones(5),
                                                                           np.zeros(25)])
    assert np.array_equal(metrics.l0_distance(x[:5], cf[:5]), np.full(5, 3))  # the column count differs
    # immutable variables: age (one column) and race; a change of the others is not counted
    forbidden = metrics.changed_variables(x, cf, [[0], race])
    assert np.array_equal(forbidden, np.r_[2 * np.ones(10), np.ones(30)])
    assert np.array_equal(metrics.changed_variables(x, x + 1e-9, groups), np.zeros(40))
    assert x[0, 0] == X_test[0, 0]  # inputs untouched


def test_constraint_violations_by_kind(pima):
    data, X_train, X_test, _, _ = pima
    space = build_feature_space(X_train, channel_index=None, feature_shape=(X_train.shape[1],), feature_range=None,
                                immutable=[0, 7], monotone={}, groups=(), grids={})
    x = X_test[:20].astype(np.float64)
    cf = x.copy()
    cf[:, 1] += 1.0  # mutable: no violation
    assert metrics.constraint_violations(x, cf, space)["total"].sum() == 0
    cf[:5, 7] += 1.0  # age, immutable
    cf[3:8, 2] = X_train[:, 2].max() + 100.0  # out of the fit data's range
    counts = metrics.constraint_violations(x, cf, space)
    assert np.array_equal(counts["immutable"], np.r_[np.ones(5), np.zeros(15)])
    assert np.array_equal(counts["range"], np.r_[np.zeros(3), np.ones(5), np.zeros(12)])
    assert np.array_equal(counts["total"], counts["immutable"] + counts["range"])
    with pytest.raises(ValueError, match="features"):
        metrics.constraint_violations(x[:, :5], cf[:, :5], space)


def test_intervals():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, size=400)
    iv = metrics.mean_interval(values)
    assert iv.n == 400 and np.isclose(iv.mean, values.mean())
    assert np.isclose(iv.half_width, 1.959963984540054 * values.std(ddof=1) / 20.0)
    assert iv.low < 3.0 < iv.high
    assert metrics.mean_interval(np.array([2.0])).half_width == 0.0
    assert math.isnan(metrics.mean_interval(np.array([])).mean)
    # Wilson: no successes in 10 still gives an upper bound of z^2 / (n + z^2)
    w = metrics.proportion_interval(np.zeros(10, dtype=bool))
    z2 = 1.959963984540054 ** 2
    assert w.mean == 0.0 and np.isclose(w.half_width, z2 / (10 + z2))
    assert np.isclose(metrics.proportion_interval(np.r_[np.ones(30), np.zeros(70)]).mean, 0.3)
    assert metrics.ratio(10.0, 0.0) is None and metrics.ratio(10.0, 4.0) == 2.5
    assert metrics.median(np.array([3.0, 1.0, 100.0])) == 3.0


@pytest.mark.parametrize("call, message", [
    (lambda: metrics.prediction_gain(np.ones((3, 2)), np.ones((4, 2)), 0), "same shape"),
    (lambda: metrics.prediction_gain(np.ones(3), np.ones(3), 0), "matrix"),
    (lambda: metrics.target_probability(np.ones((3, 2)), 2), "target classes"),
    (lambda: metrics.validity(np.ones((3, 2)), [0, 1]), "one class per row"),
    (lambda: metrics.l1_distance(np.ones((3, 2)), np.ones((3, 3))), "same shape"),
    (lambda: metrics.l0_distance(np.ones((3, 2)), np.ones((3, 2)), atol=-1), "atol"),
    (lambda: metrics.changed_features(np.ones((3, 2)), np.ones((3, 2)), [5]), "columns"),
    (lambda: metrics.changed_variables(np.ones((3, 2)), np.ones((3, 2)), [[0], [1, 2]]), "variable 1"),
    (lambda: metrics.changed_variables(np.ones((3, 2)), np.ones((3, 2)), [[]]), "no columns"),
    (lambda: metrics.changed_variables(np.ones((3, 2)), np.ones((3, 2)), [[0]], atol=-1), "atol"),
    (lambda: metrics.mean_interval(np.array([1.0, np.nan])), "NaN"),
])
def test_bad_inputs_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
