"""The parameters object: checked once, one source for the attributes, ``meta["params"]`` and the save file."""

import inspect
import json

import attrs
import numpy as np
import pytest

from alibi_countergan import CounteRGAN
from alibi_countergan.constraints import FeatureSpace
from alibi_countergan.ops import NUMPY_OPS
from alibi_countergan.params import CounteRGANConfig, Parameter


def _predict(x: np.ndarray) -> np.ndarray:
    p = 1 / (1 + np.exp(-np.asarray(x, dtype=np.float64)[:, 0]))
    return np.stack([1 - p, p], axis=1)


NAMES = [f"f{i}" for i in range(6)]
TRICKY = dict(feature_names=NAMES, cat_vars={np.int64(3): 3}, monotone={"f1": "increasing", 2: -1},
              immutable_features=("f0",), ordinal_features={"f2": (0.0, 1.0, 5.0)}, real_weight_power=float("inf"),
              feature_range=(np.zeros(6, dtype=np.float32), np.full(6, 9.0)), target_class=[1], learning_rate=1,
              random_mask_rate=0.2, n_threads=2, seed=np.int64(4), category_cost={"f4": 2.5})


def test_the_save_files_parameters_round_trip_through_json_exactly():
    explainer = CounteRGAN(_predict, (1, 6), backend="pytorch", verbose=False, **TRICKY)
    text = json.dumps(explainer.config.to_json(), allow_nan=False)
    back = CounteRGANConfig.from_json(json.loads(text))
    for name in CounteRGANConfig.names(saved=True):
        a, b = getattr(explainer.config, name), getattr(back, name)
        assert type(a) is type(b), name
        if name == "feature_range":
            assert all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))
        else:
            assert a == b, name
    assert explainer.cat_vars == {3: 3} and type(explainer.seed) is int and explainer.learning_rate == 1.0


def test_meta_and_the_save_file_render_the_same_fields():
    explainer = CounteRGAN(_predict, (1, 6), backend="pytorch", verbose=False, **TRICKY)
    meta, saved = explainer.meta["params"], explainer.config.to_json()
    assert set(CounteRGANConfig.names()) <= set(meta)
    assert set(saved) == set(CounteRGANConfig.names()) - {"generator", "discriminator", "callbacks"}
    assert json.loads(json.dumps(meta, allow_nan=False)) == meta  # plain JSON, as alibi's metadata is
    assert meta["real_weight_power"] == "inf" and meta["cat_vars"] == {"3": 3} and meta["shape"] == [6]
    assert meta["white_box"] is False and meta["target_proba"] is None


def test_assigning_a_parameter_checks_it_and_updates_meta():
    explainer = CounteRGAN(_predict, (1, 6), backend="pytorch", verbose=False, feature_names=NAMES)
    explainer.seed = 7
    assert explainer.seed == 7 and explainer.config.seed == 7 and explainer.meta["params"]["seed"] == 7
    with pytest.raises(ValueError, match="train_steps must be an integer >= 1, got 0"):
        explainer.train_steps = 0
    with pytest.raises(ValueError, match="unknown feature name 'nope'"):
        explainer.set_params(immutable_features=["nope"])
    assert explainer.train_steps == 1000 and explainer.immutable_features == []
    with pytest.raises(ValueError, match=r"\['epochs'\] are not parameters of CounteRGAN"):
        explainer.set_params(epochs=3)


def test_a_save_with_a_parameter_this_version_does_not_know_is_refused():
    params = CounteRGANConfig(shape=(1, 6), backend="pytorch").to_json()
    params["momentum"] = 0.9
    with pytest.raises(ValueError, match=r"saved parameters \['momentum'\] are not parameters"):
        CounteRGANConfig.from_json(params)


def test_the_constructor_takes_exactly_the_configs_parameters_with_the_same_defaults():
    signature = inspect.signature(CounteRGAN.__init__).parameters
    names = [name for name in signature if name not in ("self", "predictor")]
    assert names == CounteRGANConfig.names()  # a constructor argument without a field would be dropped
    fields = attrs.fields_dict(CounteRGANConfig)
    for name in names[1:]:
        assert fields[name].default == signature[name].default, name


@pytest.mark.parametrize("cost, message", [
    (0, "category_cost must be"), (float("nan"), "category_cost must be"), ("high", "category_cost must be"),
    ({"f4": -1.0}, "category_cost\\['f4'\\] must be"), ({"f1": 2.0}, "'f1' is not a one-hot categorical variable"),
    ({"nope": 2.0}, "unknown feature name 'nope'"),
])
def test_a_bad_category_cost_is_refused_naming_it(cost, message):
    with pytest.raises(ValueError, match=message):
        CounteRGAN(_predict, (1, 6), backend="pytorch", verbose=False, feature_names=NAMES, cat_vars={3: 3},
                   category_cost=cost)


@pytest.mark.parametrize("cost", [2.0, {"f4": 2.0}])
def test_a_category_cost_without_one_hot_variables_is_refused(cost):
    for cat_vars in ({}, {3: 3}):  # none at all, or integer codes (ohe=False)
        with pytest.raises(ValueError, match="category_cost=.* needs one-hot categorical variables"):
            CounteRGAN(_predict, (1, 6), backend="pytorch", verbose=False, feature_names=NAMES, cat_vars=cat_vars,
                       ohe=False, category_cost=cost)
    CounteRGAN(_predict, (1, 6), backend="pytorch", verbose=False, ohe=False, category_cost=1.0)  # the default


def test_a_category_cost_weighs_its_group_in_the_cost_of_a_change():
    X = np.zeros((20, 6), dtype=np.float32)
    X[:, 0] = np.arange(20)
    X[np.arange(20), 3 + np.arange(20) % 3] = 1.0
    explainer = CounteRGAN(_predict, (1, 6), backend="pytorch", verbose=False, feature_names=NAMES,
                           cat_vars={3: 3}, category_cost={"f5": 4.0}, train_steps=1).fit(X)
    assert explainer.space_.category_costs == (4.0,)
    assert FeatureSpace.from_config(explainer.space_.to_config()).category_costs == (4.0,)  # as a save holds it
    scale = explainer.space_.tensors(NUMPY_OPS).cost_scale
    np.testing.assert_allclose(scale[0, 3:], [2.0, 2.0, 2.0])  # a switch moves two columns: 4 in all
    np.testing.assert_allclose(scale[0, 0], 1 / X[:, 0].std(), rtol=1e-6)
    default = CounteRGAN(_predict, (1, 6), backend="pytorch", verbose=False, cat_vars={3: 3}, train_steps=1).fit(X)
    assert default.space_.category_costs == () and default.space_.group_costs == (1.0,)


def _documented_parameters() -> list:
    """The names the constructor's numpy-style "Parameters" section documents, in order."""
    doc = inspect.getdoc(CounteRGAN.__init__) or ""
    section = doc.split("Parameters\n----------\n", 1)[1].split("\n\n", 1)[0]
    names = []
    for line in section.splitlines():
        if line and not line.startswith(" "):
            names += [n.strip() for n in line.split(",")]
    return names


def test_each_parameter_is_declared_once_everywhere_it_appears():
    """The config's fields are the one declaration: the attributes, the constructor's docstring, ``meta`` and the
    save file must all name exactly those (a new field missing anywhere fails here)."""
    fields = CounteRGANConfig.names()
    attributes = [name for cls in reversed(CounteRGAN.__mro__) for name, value in vars(cls).items()
                  if isinstance(value, Parameter)]
    assert attributes == fields
    assert _documented_parameters() == ["predictor"] + fields
    explainer = CounteRGAN(_predict, (1, 6), backend="pytorch", verbose=False)
    assert set(explainer.meta["params"]) >= set(CounteRGANConfig.names(saved=True))
    assert set(CounteRGANConfig(shape=(1, 6), backend="pytorch").to_json()) == set(CounteRGANConfig.names(saved=True))
    for name in fields:
        assert getattr(explainer, name) is getattr(explainer.config, name), name


def test_the_metadata_keys_are_attributes_from_the_start():
    """alibi's Base exposes ``meta``'s keys as attributes; they follow ``meta`` on a new explainer too."""
    explainer = CounteRGAN(_predict, (1, 6), backend="pytorch", method="black-box", verbose=False)
    assert explainer.type == explainer.meta["type"] == ["blackbox", "pytorch"]
    assert explainer.params is explainer.meta["params"]
    explainer.set_params(method="black-box", train_steps=5)
    assert explainer.type == explainer.meta["type"] and explainer.params["train_steps"] == 5
