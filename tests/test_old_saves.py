"""Explainers saved by alibi-countergan 0.1.0 (save format 1) load and give the counterfactuals they gave then.

The saves in ``tests/data/saved-0.1.0`` were written by that release (see ``make_saves.py`` there): a
white-box COMPAS explainer with every kind of constraint parameter, and a black-box Pima explainer with
custom networks. The generator's counterfactuals (``refine=False``) are compared with a small tolerance (the
files may be read on another CPU than the one that wrote them), classes exactly; the refined ones, which a
later release may improve, must reach their target at least as often as they did then.
"""

import json
from pathlib import Path
from typing import Any, Dict

import alibi.saving
import numpy as np
import pytest
import torch
from torch import nn

from alibi_countergan import CounteRGAN, saving
from alibi_countergan.backends.pytorch import MLPDiscriminator, MLPGenerator
from alibi_countergan.testing import TorchFramework

OLD = Path(__file__).resolve().parent / "data" / "saved-0.1.0"
TARGETS = ("other", 1)


def _classifier(name: str, n_features: int) -> nn.Module:
    """The classifier the save was made with: ``Linear(d, 16), ReLU, Linear(16, 2), Softmax``."""
    model = nn.Sequential(nn.Linear(n_features, 16), nn.ReLU(), nn.Linear(16, 2), nn.Softmax(dim=-1))
    with np.load(OLD / "classifiers.npz", allow_pickle=False) as weights:
        model.load_state_dict({k.split("/", 1)[1]: torch.as_tensor(weights[k]) for k in weights.files
                               if k.startswith(f"{name}/")})
    return model.eval()


@pytest.fixture(scope="module")
def expected() -> Dict[str, np.ndarray]:
    with np.load(OLD / "expected.npz", allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def _assert_same_counterfactuals(explainer: CounteRGAN, name: str, expected: Dict[str, np.ndarray]) -> None:
    """The generator's own output (``refine=False``) is what a save holds: it must be the same. The refinement
    may improve between releases: its counterfactuals must reach their target at least as often as then."""
    X = expected[f"{name}/X"]
    for target in TARGETS:
        raw = explainer.explain(X, target_class=target, refine=False)
        assert np.array_equal(raw.cf["class"], expected[f"{name}/{target}/raw/class"]), target
        np.testing.assert_allclose(raw.cf["X"], expected[f"{name}/{target}/raw/X"], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(raw.cf["proba"], expected[f"{name}/{target}/raw/proba"], rtol=1e-4, atol=1e-5)
        refined = explainer.explain(X, target_class=target)
        then = np.mean(expected[f"{name}/{target}/class"] == refined.target)
        assert np.mean(refined.success) >= then, target
        assert np.all(refined.cf["class"][refined.success] == refined.target[refined.success])


def _saved_meta(name: str) -> Any:
    """The saved ``meta`` (plain JSON: its values need none of the save format's tags)."""
    return json.loads((OLD / name / "countergan.json").read_text())["meta"]


def test_a_white_box_save_of_0_1_0_loads_with_its_parameters_and_counterfactuals(expected):
    model = _classifier("compas", 16)
    for load in (saving.load, CounteRGAN.load, alibi.saving.load_explainer):
        explainer = load(OLD / "compas-white-box", model)
        assert isinstance(explainer, CounteRGAN)
        assert explainer.white_box and explainer.method == "auto" and explainer.backend == "pytorch"
        assert explainer.cat_vars == {6: 2, 8: 6, 14: 2}
        assert explainer.monotone == {"priors_count": "increasing", 2: -1}
        assert explainer.immutable_features == ["sex", 0] and explainer.target_class == [1]
        assert explainer.real_weight_power == np.inf and explainer.seed == 5
        assert explainer.feature_range is not None and explainer.feature_range[0].dtype == np.float32
        assert explainer.meta == _saved_meta("compas-white-box")
        _assert_same_counterfactuals(explainer, "compas-white-box", expected)


def test_a_black_box_save_of_0_1_0_with_custom_networks_loads(expected):
    predictor = TorchFramework().numpy_fn(_classifier("pima", 8))
    with pytest.raises(ValueError, match="custom generator"):
        saving.load(OLD / "pima-black-box", predictor)
    explainer = saving.load(OLD / "pima-black-box", predictor, generator=MLPGenerator(8, 2, hidden=(32,)),
                            discriminator=MLPDiscriminator(8, 2, hidden=(32,)))
    assert not explainer.white_box and explainer.method == "auto"
    assert explainer.ordinal_features == ["Age"] and explainer.immutable_features == ["Pregnancies", 7]
    assert explainer.meta == _saved_meta("pima-black-box")
    assert explainer.meta["params"]["generator"] == "MLPGenerator"
    _assert_same_counterfactuals(explainer, "pima-black-box", expected)
