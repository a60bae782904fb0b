"""Several counterfactuals per instance, and categorical variables named as a whole."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alibi_countergan import CounteRGAN
from alibi_countergan.diverse import _first_of_each
from alibi_countergan.metrics import violations


@pytest.fixture(scope="module")
def compas_explainer(backend, compas, compas_model):
    data, X_train, X_test, _, _ = compas
    explainer = CounteRGAN(backend.numpy_fn(compas_model), (1, X_train.shape[1]), backend=backend.name,
                           cat_vars=data.cat_vars, feature_names=data.feature_names,
                           immutable_features=["sex", "race", "age"], train_steps=300, verbose=False).fit(X_train)
    rows = backend.numpy_fn(compas_model)(X_test).argmax(1) == 0
    return explainer, X_test[rows][:60]


def test_several_counterfactuals_are_valid_distinct_ranked_and_constrained(compas_explainer):
    explainer, X = compas_explainer
    single = explainer.explain(X, target_class=1)
    several = explainer.explain(X, target_class=1, n_counterfactuals=3)
    assert "counterfactuals" not in single.data  # k = 1 keeps CFProto's layout
    assert set(single.data) <= set(several.data)
    assert several.success.mean() >= single.success.mean()
    lengths = []
    for i, found in enumerate(several.data["counterfactuals"]):
        k = len(found["X"])
        lengths.append(k)
        assert 1 <= k <= 3
        assert np.all(np.diff(found["cost"]) >= 0)  # ranked by cost
        flat = found["X"].reshape(k, -1)
        assert len(np.unique(flat, axis=0)) == k  # distinct
        np.testing.assert_array_equal(flat[0], several.cf["X"][i])  # cf is the first, cheapest one
        if several.success[i]:
            assert np.all(found["valid"]) and np.all(found["class"] == 1)
        broken = violations(np.repeat(X[i:i + 1], k, 0), flat, explainer.space_)
        assert all(int(v.sum()) == 0 for v in broken.values())
        assert found["mean_pairwise_distance"] >= 0 and (k > 1) == (found["mean_pairwise_distance"] > 0)
        assert set(found["features_used"]) == {name for names in found["changed"] for name in names}
        assert not {"sex", "race", "age"} & set(found["features_used"])
    assert np.mean(lengths) > 1.5  # most people get a real choice


def test_one_instance_gets_one_dict_of_counterfactuals(compas_explainer):
    explainer, X = compas_explainer
    explanation = explainer.explain(X[0], target_class=1, n_counterfactuals=2)
    found = explanation.data["counterfactuals"]
    assert isinstance(found, dict) and found["X"].shape[1:] == (X.shape[1],)
    with pytest.raises(ValueError, match="n_counterfactuals"):
        explainer.explain(X[0], target_class=1, n_counterfactuals=0)


def test_a_categorical_variable_is_named_as_a_whole(backend, compas, compas_model):
    data, X_train, X_test, _, _ = compas
    predict = backend.numpy_fn(compas_model)
    explainer = CounteRGAN(predict, (1, X_train.shape[1]), backend=backend.name, cat_vars=data.cat_vars,
                           feature_names=data.feature_names, immutable_features=["sex", "race"],
                           train_steps=100, verbose=False)
    columns = [j for j, name in enumerate(data.feature_names) if name.split("=")[0] in ("sex", "race")]
    assert sorted(explainer.config.constraints.immutable) == columns
    explainer.fit(X_train)
    X = X_test[predict(X_test).argmax(1) == 0][:50]
    charge = [j for j, name in enumerate(data.feature_names) if name.startswith("c_charge_degree=")]
    explanation = explainer.explain(X, target_class=1, immutable_features=["c_charge_degree"])
    np.testing.assert_array_equal(explanation.cf["X"][:, columns + charge], X[:, columns + charge])
    with pytest.raises(ValueError, match="categories have no order"):
        CounteRGAN(predict, (1, X_train.shape[1]), backend=backend.name, cat_vars=data.cat_vars,
                   feature_names=data.feature_names, monotone={"race": "increasing"})
    with pytest.raises(ValueError, match="categorical variables: .*'sex'"):
        CounteRGAN(predict, (1, X_train.shape[1]), backend=backend.name, cat_vars=data.cat_vars,
                   feature_names=data.feature_names, immutable_features=["gender"])
    with pytest.raises(ValueError, match="not one categorical group"):
        CounteRGAN(predict, (1, X_train.shape[1]), backend=backend.name,  # groups not declared
                   feature_names=data.feature_names, immutable_features=["sex"])


def test_a_row_alone_gets_three_different_recourses_in_two_predictor_calls(pima, pima_whitebox,
                                                                           count_predictor_calls):
    _, _, X_test, _, _ = pima
    calls = count_predictor_calls(pima_whitebox)
    n_valid, n_calls, apart = [], [], []
    for i in range(30):
        calls.clear()
        found = pima_whitebox.explain(X_test[i:i + 1], target_class="other", n_counterfactuals=3).counterfactuals
        n_calls.append(len(calls))
        n_valid.append(int(np.sum(found["valid"])))
        sets = [set(names) for names in found["changed"]]
        apart.append(not any(sets[j] >= sets[i] for i in range(len(sets)) for j in range(len(sets)) if i != j))
    assert np.median(n_calls) <= 2, n_calls  # the first counterfactual's call, and one for the alternatives
    assert np.mean(n_valid) >= 2.7, n_valid
    # a recourse that only adds changes to a cheaper one is chosen only to fill the k places: most rows have none
    assert np.mean(apart) >= 0.5, apart


def test_a_row_whose_first_recourse_changes_one_variable_still_gets_three(compas_explainer):
    # with race, sex and age immutable, most first counterfactuals change priors_count alone: freezing it gives one
    # new proposal, and the single-variable moves, scored in the search's call, give the third recourse
    explainer, X = compas_explainer
    n_valid, single, other = [], 0, 0
    for i in range(25):
        found = explainer.explain(X[i], target_class=1, n_counterfactuals=3).counterfactuals
        n_valid.append(int(np.sum(found["valid"])))
        sets = {tuple(names) for names, ok in zip(found["changed"], found["valid"]) if ok}
        if len(found["changed"][0]) == 1:
            single += 1
            other += len(sets) >= 2  # a recourse with another variable than the first one's
    assert single >= 5 and other >= 0.8 * single, (single, other)
    assert np.mean(n_valid) >= 2.75, n_valid  # 2.1 without the moves


def test_an_instance_already_of_its_target_is_its_only_counterfactual(compas_explainer):
    # no recourse is needed: the single-variable moves must not offer changes to a row that needs none
    explainer, X = compas_explainer
    explanation = explainer.explain(X[:5], target_class=0, n_counterfactuals=3)
    for i, found in enumerate(explanation.data["counterfactuals"]):
        assert len(found["X"]) == 1 and found["changed"] == [[]], found["changed"]
        np.testing.assert_array_equal(found["X"][0], X[i])


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(0, 25), width=st.integers(1, 6), dtype=st.sampled_from([np.float32, np.int64, bool]),
       seed=st.integers(0, 2**16 - 1))
def test_first_of_each_row_is_numpys_unique_in_order(rows, width, dtype, seed):
    # the alternatives are told apart by a sort on every column instead of np.unique(axis=0): same rows kept
    values = np.random.default_rng(seed).integers(0, 3, (rows, width)).astype(dtype)
    if dtype is np.float32:
        values[rows // 2:] *= -1  # -0.0 and 0.0 count as one value, as in np.unique
    expected = np.sort(np.unique(values, axis=0, return_index=True)[1]) if rows else np.zeros(0, dtype=np.int64)
    np.testing.assert_array_equal(_first_of_each(values), expected)
