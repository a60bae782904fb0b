"""Saving and loading: alibi's API, a fresh process, weight files, versions and bad saves."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from torch import nn

import alibi_countergan.saving as saving
from alibi_countergan import CounteRGAN, IncompatibleSaveError, LossHistory
from alibi_countergan.backends.pytorch import MLPGenerator, TorchBackend
from alibi_countergan.testing import TorchFramework

COMPAS_IMMUTABLE = ["age", "sex=Female", "sex=Male"]

_TORCH = TorchFramework()


def _scripted(model: nn.Module, n_features: int, path: Path) -> nn.Module:
    """The classifier as TorchScript saved at ``path`` and loaded back (the subprocess loads the same file)."""
    traced = torch.jit.trace(model, torch.zeros(2, n_features))
    torch.jit.save(traced, str(path))
    return torch.jit.load(str(path))


def _numpy_predictor(model: nn.Module):
    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.as_tensor(x, dtype=torch.float32)).numpy()

    return predict


@pytest.fixture(scope="module")
def saved(tmp_path_factory, compas):
    """White-box and black-box explainers on COMPAS (constraints, names, one-hot groups), saved."""
    data, X_train, _, y_train, _ = compas
    root = tmp_path_factory.mktemp("saved")
    eager = _TORCH.train(_TORCH.mlp(X_train.shape[1], 2, X_train), X_train, y_train, epochs=3)
    model = _scripted(eager, X_train.shape[1], root / "classifier.pt")
    common = dict(cat_vars=data.cat_vars, feature_names=data.feature_names, immutable_features=COMPAS_IMMUTABLE,
                  monotone={1: "increasing", "days_b_screening_arrest": -1}, train_steps=150, verbose=False, seed=3)
    white = CounteRGAN(model, (1, X_train.shape[1]), callbacks=[LossHistory()], real_weight_power=float("inf"),
                       feature_range=(np.zeros(X_train.shape[1]), X_train.max(0)), **common).fit(X_train)
    black = CounteRGAN(_numpy_predictor(model), (1, X_train.shape[1]), target_class=[1], **common).fit(X_train)
    white.save(root / "white")
    black.save(root / "black")
    return {"root": root, "model": model, "white": white, "black": black}


def _same_explanations(a, b) -> None:
    for key in ("orig_proba", "orig_class", "target", "success", "residual"):
        assert np.array_equal(a.data[key], b.data[key]), key
    for key in ("X", "class", "proba"):
        assert np.array_equal(a.cf[key], b.cf[key]), key
    assert np.asarray(a.cf["X"]).dtype == np.asarray(b.cf["X"]).dtype


def test_saved_directory_holds_json_config_and_torch_state_dicts(saved):
    directory = saved["root"] / "white"
    assert sorted(os.listdir(directory)) == ["countergan.json", "discriminator.pt", "generator.pt", "meta.dill"]
    config = json.loads((directory / "countergan.json").read_text())
    assert config["format_version"] == saving.FORMAT_VERSION
    assert config["weights"] == {"format": "torch.state_dict", "files": ["generator.pt", "discriminator.pt"]}
    # the weights are plain state_dicts: weights_only loading works and they fit the default network as they are
    state = torch.load(directory / "generator.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    generator = MLPGenerator(16, 2)
    generator.load_state_dict(state)
    expected = saved["white"].backend_.generator.state_dict()
    assert all(torch.equal(generator.state_dict()[k], expected[k]) for k in expected)


def test_load_in_process_returns_the_same_counterfactuals_meta_and_history(saved, compas):
    _, _, X_test, _, _ = compas
    for kind in ("white", "black"):
        original = saved[kind]
        predictor = saved["model"] if kind == "white" else original.predictor
        loaded = CounteRGAN.load(saved["root"] / kind, predictor)
        assert isinstance(loaded, CounteRGAN)
        assert loaded.meta == original.meta
        assert loaded.params == original.meta["params"] and loaded.version == original.meta["version"]
        assert loaded.history_ == original.history_
        assert loaded.white_box == original.white_box and loaded.method == original.method
        assert loaded.monotone == {1: "increasing", "days_b_screening_arrest": -1}
        assert loaded.cat_vars == original.cat_vars and loaded.target_class == original.target_class
        for target in (None, 0, 1, "other"):
            _same_explanations(original.explain(X_test[:64], target_class=target),
                               loaded.explain(X_test[:64], target_class=target))
    assert saved["white"].real_weight_power == np.inf
    assert CounteRGAN.load(saved["root"] / "white", saved["model"]).real_weight_power == np.inf


_FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np, torch
    import alibi.saving

    root = sys.argv[1]
    assert "alibi_countergan" not in sys.modules, "the script must not import the package itself"
    model = torch.jit.load(root + "/classifier.pt")

    def predict(x):
        with torch.no_grad():
            return model(torch.as_tensor(x, dtype=torch.float32)).numpy()

    X = np.load(root + "/X.npy")
    out, metas = {}, {}
    for kind, predictor in (("white", model), ("black", predict)):
        explainer = alibi.saving.load_explainer(root + "/" + kind, predictor)
        metas[kind] = explainer.meta
        for target in ("other", 1):
            e = explainer.explain(X, target_class=target)
            for key in ("X", "proba", "class"):
                out[f"{kind}/{target}/cf_{key}"] = e.cf[key]
            out[f"{kind}/{target}/target"] = e.target
    np.savez(root + "/fresh.npz", **out)
    json.dump({"metas": metas, "type": type(explainer).__module__}, open(root + "/fresh.json", "w"))
""")


def test_alibi_load_explainer_in_a_fresh_process_is_bit_identical(saved, compas):
    """A process that imports only alibi (and torch for the classifier) loads both explainers."""
    _, _, X_test, _, _ = compas
    root = saved["root"]
    X = X_test[:200]
    np.save(root / "X.npy", X)
    script = root / "fresh.py"
    script.write_text(_FRESH_PROCESS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, str(script), str(root)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((root / "fresh.json").read_text())
    assert result["type"] == "alibi_countergan.explainer"
    with np.load(root / "fresh.npz") as fresh:
        for kind in ("white", "black"):
            assert result["metas"][kind] == json.loads(json.dumps(saved[kind].meta))
            for target in ("other", 1):
                here = saved[kind].explain(X, target_class=target)
                assert np.array_equal(fresh[f"{kind}/{target}/cf_X"], here.cf["X"])
                assert np.array_equal(fresh[f"{kind}/{target}/cf_proba"], here.cf["proba"])
                assert np.array_equal(fresh[f"{kind}/{target}/cf_class"], here.cf["class"])
                assert np.array_equal(fresh[f"{kind}/{target}/target"], here.target)


def test_reset_predictor_swaps_the_classifier_of_a_loaded_explainer(saved, compas):
    _, _, X_test, _, _ = compas
    loaded = CounteRGAN.load(saved["root"] / "black", saved["black"].predictor)
    original = saved["black"].explain(X_test[:20], target_class=1)

    def same(x):
        return saved["black"].predictor(x)

    loaded.reset_predictor(same)
    assert loaded.predictor is same
    _same_explanations(loaded.explain(X_test[:20], target_class=1), original)

    def flipped(x):
        return saved["black"].predictor(x)[:, ::-1]

    loaded.reset_predictor(flipped)
    explanation = loaded.explain(X_test[:20], target_class=1)
    assert np.array_equal(explanation.orig_proba, flipped(X_test[:20]))


def test_saving_leaves_the_explainer_unchanged(saved, compas, tmp_path):
    _, _, X_test, _, _ = compas
    explainer = saved["black"]
    before, meta = explainer.explain(X_test[:30]), json.dumps(explainer.meta)
    weights = explainer.backend_.get_weights()
    explainer.save(tmp_path / "again")
    _same_explanations(before, explainer.explain(X_test[:30]))
    assert json.dumps(explainer.meta) == meta
    assert all(np.array_equal(v, explainer.backend_.get_weights()[k]) for k, v in weights.items())


def test_white_box_save_needs_a_model_of_its_framework(saved):
    with pytest.raises(ValueError, match="trained white-box with the pytorch backend"):
        CounteRGAN.load(saved["root"] / "white", saved["black"].predictor)


def test_a_black_box_save_loads_with_any_callable_even_a_torch_module(saved, compas):
    _, _, X_test, _, _ = compas
    loaded = CounteRGAN.load(saved["root"] / "black", saved["model"])
    assert loaded.white_box is False and loaded.meta["type"] == ["blackbox", "pytorch"]
    _same_explanations(saved["black"].explain(X_test[:10]), loaded.explain(X_test[:10]))


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for file in src.iterdir():
        (dst / file.name).write_bytes(file.read_bytes())
    return dst


@pytest.mark.parametrize("version, advice", [(saving.FORMAT_VERSION + 1, "Upgrade alibi-countergan"),
                                             (0, "Fit the explainer again")])
def test_a_save_from_an_incompatible_version_is_a_clear_error(saved, tmp_path, version, advice):
    directory = _copy(saved["root"] / "black", tmp_path / "other-version")
    config = json.loads((directory / "countergan.json").read_text())
    config["format_version"], config["package_version"] = version, "9.9.9"
    (directory / "countergan.json").write_text(json.dumps(config))
    with pytest.raises(IncompatibleSaveError, match=f"alibi-countergan 9.9.9 in save format {version}.*{advice}"):
        CounteRGAN.load(directory, saved["black"].predictor)


def test_missing_and_damaged_saves_are_clear_errors(saved, tmp_path):
    predictor = saved["black"].predictor
    with pytest.raises(FileNotFoundError, match="no directory"):
        saving.load(tmp_path / "nothing-here", predictor)
    directory = _copy(saved["root"] / "black", tmp_path / "damaged")
    (directory / "generator.pt").unlink()
    with pytest.raises(FileNotFoundError, match="lacks its weight file generator.pt"):
        CounteRGAN.load(directory, predictor)
    (directory / "countergan.json").write_text('{"format": "something-else"}')
    with pytest.raises(IncompatibleSaveError, match="not a CounteRGAN save"):
        CounteRGAN.load(directory, predictor)
    (directory / "countergan.json").write_text("{not json")
    with pytest.raises(IncompatibleSaveError, match="not valid JSON"):
        CounteRGAN.load(directory, predictor)


def test_weights_of_another_architecture_are_refused(saved, tmp_path):
    directory = _copy(saved["root"] / "black", tmp_path / "wrong-weights")
    state = torch.load(directory / "generator.pt", weights_only=True)
    state["head.weight"] = torch.zeros(3, 3)
    torch.save(state, directory / "generator.pt")
    with pytest.raises(ValueError, match=r"generator/head.weight has shape \(3, 3\)"):
        CounteRGAN.load(directory, saved["black"].predictor)


def test_an_unfitted_explainer_cannot_be_saved(saved, tmp_path):
    explainer = CounteRGAN(saved["black"].predictor, (1, 16), verbose=False)
    with pytest.raises(RuntimeError, match="call fit"):
        explainer.save(tmp_path / "unfitted")
    assert not (tmp_path / "unfitted" / "meta.dill").exists()


def test_custom_networks_are_given_again_at_load_time(pima, tmp_path):
    _, X_train, X_test, y_train, _ = pima
    pima_model = _TORCH.train(_TORCH.mlp(8, 2, X_train), X_train, y_train, epochs=5)

    class Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8 + 8 + 2, 16), nn.Tanh(), nn.Linear(16, 8))

        def forward(self, x_std, onehot, mask):
            return self.net(torch.cat([x_std, mask, onehot], dim=1))

    class Discriminator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))

        def forward(self, x_std):
            return self.net(x_std)

    explainer = CounteRGAN(pima_model, (1, 8), generator=Generator(), discriminator=Discriminator(), train_steps=50,
                           verbose=False).fit(X_train)
    explainer.save(tmp_path / "custom")
    with pytest.raises(ValueError, match=r"custom generator \(Generator\).*generator=\.\.\."):
        CounteRGAN.load(tmp_path / "custom", pima_model)
    loaded = saving.load(tmp_path / "custom", pima_model, generator=Generator(), discriminator=Discriminator())
    _same_explanations(explainer.explain(X_test), loaded.explain(X_test))
    assert loaded.meta == explainer.meta
    plain = CounteRGAN(pima_model, (1, 8), train_steps=5, verbose=False).fit(X_train)
    plain.save(tmp_path / "plain")
    with pytest.raises(ValueError, match="default generator; do not pass one"):
        saving.load(tmp_path / "plain", pima_model, generator=Generator())


def test_a_backend_without_a_weight_file_hook_is_saved_as_numpy(saved, compas, tmp_path, monkeypatch):
    """The path another backend takes before it has a framework-native hook: get_weights into weights.npz."""
    _, _, X_test, _, _ = compas
    monkeypatch.delattr(TorchBackend, "weight_format")
    assert not isinstance(saved["black"].backend_, saving.WeightFiles)
    saved["black"].save(tmp_path / "npz")
    assert sorted(os.listdir(tmp_path / "npz")) == ["countergan.json", "meta.dill", "weights.npz"]
    with np.load(tmp_path / "npz" / "weights.npz", allow_pickle=False) as archive:
        assert set(archive.files) == set(saved["black"].backend_.get_weights())
    loaded = CounteRGAN.load(tmp_path / "npz", saved["black"].predictor)
    _same_explanations(saved["black"].explain(X_test[:50]), loaded.explain(X_test[:50]))
    monkeypatch.undo()
    config = json.loads((saved["root"] / "black" / "countergan.json").read_text())
    directory = _copy(saved["root"] / "black", tmp_path / "unknown-format")
    config["weights"]["format"] = "keras.weights.h5"
    (directory / "countergan.json").write_text(json.dumps(config))
    with pytest.raises(IncompatibleSaveError, match="'keras.weights.h5', which the installed pytorch backend cannot"):
        CounteRGAN.load(directory, saved["black"].predictor)


def test_image_explainers_round_trip(digits, digits_model, tmp_path):
    explainer = CounteRGAN(digits_model, (1, 8, 8, 1), train_steps=20, verbose=False).fit(digits["X_train"])
    explainer.save(tmp_path / "digits")
    loaded = CounteRGAN.load(tmp_path / "digits", digits_model)
    for target in (3, "other"):
        _same_explanations(explainer.explain(digits["X_test"][:40], target_class=target),
                           loaded.explain(digits["X_test"][:40], target_class=target))


@pytest.mark.parametrize("value", [
    None, True, 3, 2.5, float("inf"), -float("inf"), "name", [1, "a"], (1, (2, 3)), {"a": 1}, {1: "x", "b": (2,)},
    {"__tuple__": 1}, np.arange(6, dtype=np.float32).reshape(2, 3), np.array([np.inf, -1.0]), np.int64(4),
    np.float32(0.1), np.bool_(True),
])
def test_parameter_json_round_trips_exactly(value):
    text = json.dumps(saving.to_json_value(value), allow_nan=False)
    back = saving.from_json_value(json.loads(text))
    if isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and np.array_equal(back, value)
    else:
        assert back == value and type(back) is type(value.item() if isinstance(value, np.generic) else value)


def test_values_json_cannot_hold_are_refused_when_saving():
    with pytest.raises(TypeError, match=r"params\['f'\]: cannot store a value of type function"):
        saving.to_json_value({"f": lambda x: x}, "params")


def test_each_backend_round_trips_in_its_own_weight_format(pima, pima_model, pima_whitebox, tmp_path):
    _, _, X_test, _, _ = pima
    pima_whitebox.save(tmp_path / "explainer")
    config = json.loads((tmp_path / "explainer" / "countergan.json").read_text())
    expected = {"pytorch": "torch.state_dict", "tensorflow": "tf.keras.checkpoint"}[pima_whitebox.backend]
    assert config["weights"]["format"] == expected
    assert not (tmp_path / "explainer" / "weights.npz").exists()
    loaded = CounteRGAN.load(tmp_path / "explainer", pima_model)
    _same_explanations(loaded.explain(X_test), pima_whitebox.explain(X_test))
    assert np.array_equal(loaded.explain(X_test).cf["X"], pima_whitebox.explain(X_test).cf["X"])


def test_the_plain_gan_ablation_keeps_the_weight_names_and_round_trips(pima, pima_model, tmp_path):
    _, X_train, X_test, _, _ = pima
    gan = CounteRGAN(pima_model, (1, 8), residual=False, train_steps=20, seed=1, verbose=False).fit(X_train)
    residual = CounteRGAN(pima_model, (1, 8), train_steps=1, seed=1, verbose=False).fit(X_train)
    # the generator is wrapped so that its whole counterfactual reaches the core as a residual;
    # the wrapper renames no weight and is the only difference: the same weights give G(x_std) - x_std
    weights = gan.backend_.get_weights()
    assert set(weights) == set(residual.backend_.get_weights())
    residual.backend_.set_weights(weights)
    rng = np.random.default_rng(0)
    x_std = rng.normal(size=(32, 8)).astype(np.float32)
    onehot = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 32)]
    mask = (rng.random((32, 8)) < 0.8).astype(np.float32)
    np.testing.assert_allclose(gan.backend_.generate(x_std, onehot, mask),
                               residual.backend_.generate(x_std, onehot, mask) - x_std, rtol=0, atol=1e-6)
    gan.save(tmp_path / "gan")
    loaded = CounteRGAN.load(tmp_path / "gan", pima_model)
    assert loaded.residual is False and loaded.meta == gan.meta
    for target in (None, "other"):
        _same_explanations(gan.explain(X_test, target_class=target), loaded.explain(X_test, target_class=target))


def test_a_custom_generator_of_the_plain_gan_ablation_round_trips(pima, tmp_path):
    _, X_train, X_test, y_train, _ = pima
    model = _TORCH.train(_TORCH.mlp(8, 2, X_train), X_train, y_train, epochs=2)

    class Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8 + 8 + 2, 16), nn.Tanh(), nn.Linear(16, 8))

        def forward(self, x_std, onehot, mask):
            return x_std + self.net(torch.cat([x_std, mask, onehot], dim=1))

    generator = Generator()
    explainer = CounteRGAN(model, (1, 8), generator=generator, residual=False, train_steps=10,
                           verbose=False).fit(X_train)
    assert explainer.generator is generator and explainer.meta["params"]["generator"] == "Generator"
    assert set(explainer.backend_.get_weights()) >= {"generator/net.0.weight", "generator/net.2.bias"}
    explainer.save(tmp_path / "custom")
    loaded = saving.load(tmp_path / "custom", model, generator=Generator())
    assert loaded.residual is False
    _same_explanations(explainer.explain(X_test), loaded.explain(X_test))


def _damage(file: Path, how: str) -> None:
    data = file.read_bytes()
    if how == "truncated":
        file.write_bytes(data[: len(data) // 2])
    elif how == "zero bytes":
        file.write_bytes(b"")
    elif how == "random bytes":
        file.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif how == "another format":  # a valid file of the wrong kind: JSON text where weights belong
        file.write_text(json.dumps({"weights": [1, 2, 3]}))
    else:
        raise AssertionError(how)


DAMAGE = ["truncated", "zero bytes", "random bytes", "another format"]


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("file", ["generator.pt", "discriminator.pt"])
def test_a_damaged_torch_weight_file_is_an_incompatible_save_naming_it(saved, tmp_path, file, how):
    directory = _copy(saved["root"] / "black", tmp_path / "damaged")
    _damage(directory / file, how)
    with pytest.raises(IncompatibleSaveError, match=f"weight file {directory / file}") as info:
        CounteRGAN.load(directory, saved["black"].predictor)
    message = str(info.value)
    assert "fit and save the explainer again" in message
    assert "weights_only=False" not in message  # torch's advice to drop the safeguard is never relayed


def test_a_pickle_of_other_objects_is_refused_without_running_it(saved, tmp_path):
    directory = _copy(saved["root"] / "black", tmp_path / "pickled")
    marker = tmp_path / "ran"
    torch.save({"weight": _Marker(marker)}, directory / "generator.pt")
    with pytest.raises(IncompatibleSaveError, match=f"weight file {directory / 'generator.pt'}"):
        CounteRGAN.load(directory, saved["black"].predictor)
    assert not marker.exists()
    torch.save([torch.zeros(2)], directory / "generator.pt")  # loads under weights_only, but is no state_dict
    with pytest.raises(IncompatibleSaveError, match="holds a list, not a state_dict of tensors"):
        CounteRGAN.load(directory, saved["black"].predictor)


class _Marker:
    """Unpickling it would create a file (it must never be unpickled by the loader)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_numpy_weight_archive_is_an_incompatible_save_naming_it(saved, compas, tmp_path, monkeypatch,
                                                                         how):
    monkeypatch.delattr(TorchBackend, "weight_format")
    directory = tmp_path / "numpy"
    saved["black"].save(directory)
    monkeypatch.undo()
    _damage(directory / "weights.npz", how)
    with pytest.raises(IncompatibleSaveError, match=f"weight file {directory / 'weights.npz'}"):
        CounteRGAN.load(directory, saved["black"].predictor)


@pytest.mark.parametrize("how", DAMAGE)
def test_each_backend_names_its_damaged_weight_file(pima, pima_model, pima_whitebox, tmp_path, how):
    pima_whitebox.save(tmp_path / "explainer")
    config = json.loads((tmp_path / "explainer" / "countergan.json").read_text())
    victim = next(f for f in config["weights"]["files"] if f.startswith("generator") and "index" not in f)
    _damage(tmp_path / "explainer" / victim, how)
    with pytest.raises(IncompatibleSaveError, match="fit and save the explainer again") as info:
        CounteRGAN.load(tmp_path / "explainer", pima_model)
    assert str(tmp_path / "explainer" / "generator") in str(info.value)
