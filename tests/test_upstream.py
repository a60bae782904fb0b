"""The private details of alibi and mlserver-alibi-explain listed in ``alibi_countergan/upstream.py``, one test each.

Each test names the upstream version its detail was read in (``upstream.WRITTEN_FOR``), checks that the
installed version still has it (the names, the signatures, the behaviour the hook counts on) and then fails,
asking for the detail to be re-checked, when the installed version is another one. The serving tests are
skipped where MLServer is not installed.
"""

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import alibi.saving
import pytest
from alibi.api.interfaces import Base, Explainer, Explanation

from alibi_countergan import saving, upstream

REPO = Path(__file__).resolve().parents[1]


def _parameters(function: Any) -> List[str]:
    return list(inspect.signature(function).parameters)


def _require_written_for(*distributions: str) -> None:
    """Fail, naming what to re-check, when an installed distribution is not the version the hook was written for."""
    drifted = [message for message in map(upstream.version_drift, distributions) if message]
    if drifted:
        pytest.fail("\n".join(drifted))


def test_written_for_names_alibi_0_9_6_and_mlserver_1_6_1():
    assert upstream.WRITTEN_FOR == {"alibi": "0.9.6", "mlserver": "1.6.1", "mlserver-alibi-explain": "1.6.1"}


def test_the_package_and_the_hook_module_import_without_mlserver():
    code = ("import sys; import alibi_countergan, alibi_countergan.upstream; "
            "sys.exit(sorted(m for m in sys.modules if m.split('.')[0].startswith('mlserver')) or 0)")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# ---------------------------------------------------------------------------------------------
# alibi 0.9.6
# ---------------------------------------------------------------------------------------------


class _Probe(Explainer):
    """The smallest alibi explainer: what ``Base`` does when one is made."""

    def explain(self, X: Any) -> Explanation:  # pragma: no cover - never called
        raise NotImplementedError


def test_alibi_saving_dispatches_on_private_names_as_in_alibi_0_9_6(tmp_path, monkeypatch):
    """alibi 0.9.6: ``save_explainer`` / ``load_explainer`` call ``alibi.saving._save_<name>`` / ``_load_<name>``."""
    assert _parameters(alibi.saving.save_explainer) == ["explainer", "path"]
    assert _parameters(alibi.saving.load_explainer) == ["path", "predictor"]
    assert alibi.saving._save_CounteRGAN is saving._save_countergan  # registered by importing alibi_countergan
    assert alibi.saving._load_CounteRGAN is saving._load_countergan
    save_prefix, load_prefix = upstream.SAVING_PREFIXES
    for prefix in upstream.SAVING_PREFIXES:  # undone after the test: the probe's names are deleted again
        monkeypatch.setattr(alibi.saving, prefix + "_Probe", None, raising=False)
    calls: Dict[str, Tuple[Any, ...]] = {}

    def save(explainer: Any, path: Any) -> None:
        calls["save"] = (explainer, Path(path), (Path(path) / "meta.dill").is_file())

    def load(path: Any, predictor: Any, meta: Dict[str, Any]) -> str:
        calls["load"] = (Path(path), predictor, meta["name"])
        return "loaded"

    upstream.register_saving("_Probe", save, load)
    assert getattr(alibi.saving, save_prefix + "_Probe") is save
    probe = _Probe()
    alibi.saving.save_explainer(probe, tmp_path)
    assert calls["save"] == (probe, tmp_path, True)  # meta.dill is written before the save function runs
    assert alibi.saving.load_explainer(tmp_path, "predictor") == "loaded"
    assert calls["load"] == (tmp_path, "predictor", "_Probe")
    _require_written_for("alibi")


def test_alibi_base_copies_meta_to_attributes_only_when_made_as_in_alibi_0_9_6():
    """alibi 0.9.6: ``Base.__attrs_post_init__`` copies ``meta``'s keys to attributes, and nothing redoes it later."""
    assert callable(getattr(Base, "__attrs_post_init__", None))
    assert _parameters(Base._update_metadata) == ["self", "data_dict", "params"]
    probe = _Probe()
    assert {key: getattr(probe, key) for key in probe.meta} == probe.meta
    probe._update_metadata({"type": ["probe"]})
    assert probe.meta["type"] == ["probe"] and probe.type != ["probe"]  # why upstream.mirror_meta exists
    upstream.mirror_meta(probe)
    assert probe.type == ["probe"]
    _require_written_for("alibi")


# ---------------------------------------------------------------------------------------------
# mlserver 1.6.1 and mlserver-alibi-explain 1.6.1
# ---------------------------------------------------------------------------------------------


def _runtime_classes() -> List[Tuple[type, type]]:
    pytest.importorskip("mlserver")
    pytest.importorskip("mlserver_alibi_explain")
    from mlserver_alibi_explain.explainers.black_box_runtime import AlibiExplainBlackBoxRuntime
    from mlserver_alibi_explain.explainers.white_box_runtime import AlibiExplainWhiteBoxRuntime

    from alibi_countergan.serving import CounteRGANBlackBoxRuntime, CounteRGANWhiteBoxRuntime

    return [(CounteRGANBlackBoxRuntime, AlibiExplainBlackBoxRuntime),
            (CounteRGANWhiteBoxRuntime, AlibiExplainWhiteBoxRuntime)]


def _shadowed(ours: type, base: type) -> Set[str]:
    """The names our classes above ``base`` define that ``base`` (or its bases) has too, dunders left out."""
    defined: Set[str] = set()
    for cls in ours.__mro__[:ours.__mro__.index(base)]:
        defined |= set(vars(cls))
    return {name for name in defined if hasattr(base, name) and not name.startswith("__") and name != "_abc_impl"}


def test_the_runtimes_override_only_public_methods_as_in_mlserver_1_6_1():
    """mlserver 1.6.1, mlserver-alibi-explain 1.6.1: the runtimes override MLModel's public methods, no private one."""
    classes = _runtime_classes()
    from mlserver.model import MLModel
    from mlserver_alibi_explain.runtime import AlibiExplainRuntimeBase

    for ours, base in classes:
        shadowed = _shadowed(ours, base)
        assert {n for n in shadowed if n.startswith("_")} == set(upstream.OVERRIDDEN_PRIVATE_METHODS), ours
        assert shadowed - set(upstream.OVERRIDDEN_PRIVATE_METHODS) <= {"load", "predict", "unload",
                                                                       "get_alibi_method"}, ours
        assert _parameters(base.__init__) == ["self", "settings", "explainer_class"]  # called by _init_runtime
    for name, parameters in {"load": ["self"], "predict": ["self", "payload"], "unload": ["self"]}.items():
        assert inspect.iscoroutinefunction(getattr(MLModel, name)) and _parameters(getattr(MLModel, name)) == parameters
    assert _parameters(AlibiExplainRuntimeBase.get_alibi_method) == ["self"]
    _require_written_for("mlserver", "mlserver-alibi-explain")


def test_the_runtime_base_makes_the_thread_pool_as_in_mlserver_alibi_explain_1_6_1():
    """mlserver-alibi-explain 1.6.1: ``AlibiExplainRuntimeBase.__init__`` makes ``_executor``, a thread pool."""
    _runtime_classes()
    from concurrent.futures import ThreadPoolExecutor

    from mlserver.model import MLModel
    from mlserver.settings import ModelSettings
    from mlserver_alibi_explain.runtime import AlibiExplainRuntimeBase

    assert _parameters(AlibiExplainRuntimeBase.__init__) == ["self", "settings", "explainer_settings"]
    runtime = AlibiExplainRuntimeBase(ModelSettings(name="probe", implementation=MLModel), explainer_settings=None)
    executor = upstream.runtime_executor(runtime)
    assert isinstance(executor, ThreadPoolExecutor)
    executor.shutdown()
    _require_written_for("mlserver-alibi-explain")


def test_upstream_keeps_the_explainer_in_model_as_in_mlserver_alibi_explain_1_6_1():
    """mlserver-alibi-explain 1.6.1: its runtimes' ``load`` sets ``self._model``, the name the runtimes keep."""
    assert set(upstream.SHARED_ATTRIBUTES) == {"_executor", "_model"}
    for _, base in _runtime_classes():
        assert "self._model = " in inspect.getsource(base.load), base
    _require_written_for("mlserver-alibi-explain")
