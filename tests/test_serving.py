"""The MLServer runtimes: in-process checks, then the example deployment served by real ``mlserver start`` processes.

The example's black-box explainer was fitted on the raw COMPAS table (a DataFrame with integer and string
columns) next to a scikit-learn Pipeline served by MLServer's scikit-learn runtime: it is asked with
MLServer's pandas codec and calls the classifier with it. The white-box explainer takes one-hot arrays.

Needs the serving extra (``tox -e serving``); skipped where MLServer is not installed.
"""

import asyncio
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("mlserver")
pytest.importorskip("mlserver_alibi_explain")
requests = pytest.importorskip("requests")

import joblib  # noqa: E402
import torch  # noqa: E402
from conftest import REPO  # noqa: E402
from mlserver.codecs import PandasCodec  # noqa: E402
from mlserver.codecs.utils import decode_inference_request  # noqa: E402
from mlserver.errors import MLServerError  # noqa: E402
from mlserver.settings import ModelSettings  # noqa: E402
from mlserver.types import InferenceRequest  # noqa: E402

from alibi_countergan import CounteRGAN  # noqa: E402
from alibi_countergan.datasets import compas_csv  # noqa: E402
from alibi_countergan.serving import (  # noqa: E402
    ClassifierError,
    ClassifierTimeoutError,
    CounteRGANBlackBoxRuntime,
    CounteRGANWhiteBoxRuntime,
    ExplainRequestError,
    RequestTooLargeError,
    load_classifier,
    table_request,
)
from alibi_countergan.table import TableExplanation  # noqa: E402
from alibi_countergan.testing import TorchFramework, free_ports, stop_process_group  # noqa: E402

pytestmark = pytest.mark.serving

EXAMPLE = REPO / "examples" / "serving"
TRAIN_STEPS = 300
START_TIMEOUT_S = 180
BLACK_BOX, WHITE_BOX = "compas-explainer", "compas-explainer-whitebox"

Instances = Union[pd.DataFrame, np.ndarray]

_TORCH = TorchFramework()


# ---------------------------------------------------------------------------------------------
# the example's models, trained once by its own script
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Path:
    """A copy of examples/serving with the models that its train.py writes."""
    root = tmp_path_factory.mktemp("deployment") / "serving"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("artefacts", "__pycache__", ".metrics", ".envs"))
    run = subprocess.run([sys.executable, str(root / "train.py"), "--root", str(root), "--train-steps",
                          str(TRAIN_STEPS)], env=_env(), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    return root


def _env() -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def _classifier_path(root: Path) -> Path:
    return root / "classifier-server" / "compas-classifier" / "artefacts" / "model.joblib"


def _explainer_dir(root: Path, model: str) -> Path:
    return root / "explainer-server" / model / "artefacts"


@pytest.fixture(scope="module")
def in_process(deployment) -> Dict[str, CounteRGAN]:
    """The saved explainers loaded here, with the same classifiers the servers use."""
    classifier = joblib.load(_classifier_path(deployment))
    whitebox = _explainer_dir(deployment, "compas-explainer-whitebox")
    return {"compas-explainer": CounteRGAN.load(_explainer_dir(deployment, "compas-explainer") / "explainer",
                                                classifier.predict_proba),
            "compas-explainer-whitebox": CounteRGAN.load(whitebox / "explainer",
                                                         load_classifier(whitebox / "classifier.pt2"))}


@pytest.fixture(scope="module")
def X(compas) -> np.ndarray:
    """One-hot test rows, for the white-box explainer (its torch classifier reads them)."""
    return compas[2][:400]


def _example_module(deployment: Path, name: str) -> Any:
    """A module of the example's folder (compas_table, request), imported from the deployment's copy."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", deployment / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(deployment))  # request.py imports compas_table
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(deployment))
    return module


@pytest.fixture(scope="module")
def T(deployment) -> pd.DataFrame:
    """Raw test rows (named, typed columns: six integers, three strings), for the black-box explainer."""
    return _example_module(deployment, "compas_table").split(seed=0)[1].iloc[:400].reset_index(drop=True)


@pytest.fixture(scope="module")
def data(T, X) -> Dict[str, Instances]:
    """Each explainer's test instances, in its own form."""
    return {BLACK_BOX: T, WHITE_BOX: X}


def _rows(x: Instances, start: int, stop: int) -> Instances:
    """Rows ``start:stop``; a DataFrame's numbered from 0, as the server numbers the rows of a request."""
    return x.iloc[start:stop].reset_index(drop=True) if isinstance(x, pd.DataFrame) else x[start:stop]


# ---------------------------------------------------------------------------------------------
# in-process: the runtime classes driven directly
# ---------------------------------------------------------------------------------------------


def _settings(name: str, implementation: type, uri: Path, **extra: Any) -> ModelSettings:
    return ModelSettings(name=name, implementation=implementation, parameters={"uri": str(uri), "extra": extra})


def _request(x: Instances, **explain_parameters: Any) -> InferenceRequest:
    return InferenceRequest.model_validate(_body(x, **explain_parameters))


def _explanation(response: Any) -> Dict[str, Any]:
    return json.loads(response.outputs[0].data[0])


def test_white_box_runtime_in_process_matches_the_explainer(deployment, in_process, X):
    folder = _explainer_dir(deployment, "compas-explainer-whitebox")
    runtime = CounteRGANWhiteBoxRuntime(_settings("wb", CounteRGANWhiteBoxRuntime, folder / "explainer",
                                                  infer_uri=str(folder / "classifier.pt2")))

    async def run() -> Any:
        assert await runtime.load()
        return await runtime.predict(_request(X[:25], target_class=[1]))

    served = _explanation(asyncio.run(run()))
    expected = in_process["compas-explainer-whitebox"].explain(X[:25], target_class=[1])
    _check(served, expected)
    assert runtime._model.white_box and runtime._model.meta == in_process["compas-explainer-whitebox"].meta


def test_runtime_with_explainer_batch_false_takes_one_instance_per_request(deployment, in_process, X, T):
    runtime = CounteRGANWhiteBoxRuntime(_settings(
        "one", CounteRGANWhiteBoxRuntime, _explainer_dir(deployment, "compas-explainer-whitebox") / "explainer",
        infer_uri=str(_explainer_dir(deployment, "compas-explainer-whitebox") / "classifier.pt2"),
        explainer_batch=False))

    async def run(x: Instances) -> Any:
        if not hasattr(runtime, "_model"):
            assert await runtime.load(), runtime.load_error
        return await runtime.predict(_request(x, target_class=1))

    _check(_explanation(asyncio.run(run(X[:1]))), in_process[WHITE_BOX].explain(X[:1], target_class=1))
    with pytest.raises(ExplainRequestError, match=r"explainer_batch=false: send one instance.*\[2, 16\]"):
        asyncio.run(run(X[:2]))


def test_the_table_explainer_in_process_takes_the_pandas_codec_and_its_classifier_file(deployment, in_process, T):
    """The black-box explainer of the raw table, with its Pipeline loaded in-process (the white-box runtime):
    the same explanation as the explainer's own, counterfactuals in the table's columns."""
    runtime = CounteRGANWhiteBoxRuntime(_settings(
        "table", CounteRGANWhiteBoxRuntime, _explainer_dir(deployment, BLACK_BOX) / "explainer",
        infer_uri=str(_classifier_path(deployment)), explainer_batch=False))

    async def run(x: pd.DataFrame) -> Any:
        if not hasattr(runtime, "_model"):
            assert await runtime.load(), runtime.load_error
        return await runtime.predict(_request(x, target_class=1))

    response = asyncio.run(run(_rows(T, 0, 1)))
    _check(_explanation(response), in_process[BLACK_BOX].explain(_rows(T, 0, 1), target_class=1))
    assert "classifier_requests" not in response.parameters.model_dump()  # no classifier server to count
    with pytest.raises(ExplainRequestError, match=r"explainer_batch=false: send one instance per request, got 2 rows"):
        asyncio.run(run(_rows(T, 0, 2)))


def test_runtime_settings_are_checked(deployment):
    directory = _explainer_dir(deployment, "compas-explainer") / "explainer"
    with pytest.raises(MLServerError, match="init_parameters"):
        CounteRGANBlackBoxRuntime(_settings("x", CounteRGANBlackBoxRuntime, directory, infer_uri="http://x/infer",
                                            init_parameters={"shape": [1, 16]}))
    with pytest.raises(MLServerError, match="parameters.uri"):
        CounteRGANBlackBoxRuntime(ModelSettings(name="x", implementation=CounteRGANBlackBoxRuntime,
                                                parameters={"extra": {"infer_uri": "http://x/infer"}}))


def test_an_unreachable_classifier_is_a_502_naming_its_address(deployment, T):
    port = free_ports(1)[0]
    uri = f"http://127.0.0.1:{port}/v2/models/nothing/infer"
    runtime = CounteRGANBlackBoxRuntime(_settings("bb", CounteRGANBlackBoxRuntime,
                                                  _explainer_dir(deployment, "compas-explainer") / "explainer",
                                                  infer_uri=uri))

    async def run() -> Any:
        await runtime.load()  # loading does not call the classifier
        return await runtime.predict(_request(_rows(T, 0, 1)))

    with pytest.raises(ClassifierError, match=f"classifier at {uri} could not be reached") as info:
        asyncio.run(run())
    assert info.value.status_code == 502


class _FakeClassifier:
    """A loopback HTTP server standing in for a failing classifier: it answers late, or with an HTTP error."""

    def __init__(self, mode: str, delay_s: float = 2.0) -> None:
        import http.server

        self.headers_seen: List[Dict[str, str]]
        import threading

        seen = self.headers_seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append(dict(self.headers))
                if mode == "slow":
                    time.sleep(delay_s)
                    code, body = 200, b"{}"
                else:
                    code, body = int(mode), b'{"error": "the model is restarting"}'
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the explainer gave up waiting and closed the connection
                    pass

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        http.server.ThreadingHTTPServer.daemon_threads = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.block_on_close = False  # type: ignore[attr-defined]
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/v2/models/classifier/infer"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _black_box(deployment: Path, uri: str, **extra: Any) -> CounteRGANBlackBoxRuntime:
    return CounteRGANBlackBoxRuntime(_settings("bb", CounteRGANBlackBoxRuntime,
                                               _explainer_dir(deployment, "compas-explainer") / "explainer",
                                               infer_uri=uri, **extra))


def _explain_once(runtime: Any, x: Instances) -> Any:
    async def run() -> Any:
        try:
            assert await runtime.load(), runtime.load_error
            return await runtime.predict(_request(x))
        finally:
            await runtime.unload()

    return asyncio.run(run())


def test_a_classifier_that_does_not_answer_in_time_is_a_504_naming_it(deployment, T):
    classifier = _FakeClassifier("slow", delay_s=3.0)
    try:
        runtime = _black_box(deployment, classifier.uri, classifier_timeout=0.5, classifier_probe_interval=0)
        start = time.monotonic()
        with pytest.raises(ClassifierTimeoutError, match=f"classifier at {classifier.uri} did not answer within "
                                                         r"0.5 s.*\(parameters.extra.classifier_timeout\)") as info:
            _explain_once(runtime, _rows(T, 0, 1))
        assert time.monotonic() - start < 2.5  # the timeout, not the classifier's 3 s
        assert info.value.status_code == 504
    finally:
        classifier.close()


@pytest.mark.parametrize("code", [500, 503, 400, 404])
def test_an_http_error_from_the_classifier_is_a_502_naming_it(deployment, T, code):
    classifier = _FakeClassifier(str(code))
    try:
        with pytest.raises(ClassifierError, match=f"classifier at {classifier.uri}.* answered HTTP {code}.*the model "
                                                  f"is restarting") as info:
            _explain_once(_black_box(deployment, classifier.uri, classifier_probe_interval=0,
                                     classifier_headers={"Seldon-Model": "compas-classifier"}), _rows(T, 0, 1))
        assert info.value.status_code == 502
        assert classifier.headers_seen and all(h.get("Seldon-Model") == "compas-classifier"
                                               for h in classifier.headers_seen)
    finally:
        classifier.close()


def test_readiness_follows_the_classifiers_ready_endpoint(deployment):
    classifier = _FakeClassifier("503")
    runtime = _black_box(deployment, classifier.uri, classifier_timeout=1, classifier_probe_interval=0.2)

    async def run() -> List[bool]:
        seen = []
        assert await runtime.load()
        runtime.ready = True  # what MLServer does with load()'s result
        await asyncio.sleep(0.5)
        seen.append(runtime.ready)
        classifier.close()  # nothing listens any more: still not ready
        await asyncio.sleep(0.5)
        seen.append(runtime.ready)
        await runtime.unload()
        return seen

    try:
        assert asyncio.run(run()) == [False, False]
        assert runtime.ready_uri == classifier.uri[: -len("infer")] + "ready"
    finally:
        classifier.close()


def test_serving_options_are_checked_and_reach_the_runtime(deployment):
    runtime = _black_box(deployment, "http://127.0.0.1:1/v2/models/c/infer", classifier_timeout=2.5, max_rows=7)
    assert runtime.options.classifier_timeout == 2.5 and runtime.options.max_rows == 7
    assert runtime.settings.parameters.extra["max_rows"] == 7  # kept for MLServer's parallel workers
    for name, value in [("classifier_timeout", 0), ("classifier_timeout", "10"), ("max_rows", 1.5),
                        ("max_request_bytes", -1), ("classifier_probe_interval", float("nan")),
                        ("classifier_headers", {"Seldon-Model": 1})]:
        with pytest.raises(MLServerError, match=f"parameters.extra.{name} must (be a positive|map header)") as info:
            _black_box(deployment, "http://127.0.0.1:1/v2/models/c/infer", **{name: value})
        assert info.value.status_code == 422


def test_adaptive_batching_is_refused(deployment):
    """MLServer's adaptive batching would hand clients other requests' explanations (measured: 383 of 400)."""
    settings = _settings("bb", CounteRGANBlackBoxRuntime, _explainer_dir(deployment, "compas-explainer") / "explainer",
                         infer_uri="http://127.0.0.1:1/v2/models/c/infer")
    settings.max_batch_size, settings.max_batch_time = 16, 0.005
    with pytest.raises(MLServerError, match="adaptive batching .* cannot split one explanation") as info:
        CounteRGANBlackBoxRuntime(settings)
    assert info.value.status_code == 422


def test_requests_past_the_size_limits_are_a_413(deployment, in_process, X):
    folder = _explainer_dir(deployment, "compas-explainer-whitebox")
    runtime = CounteRGANWhiteBoxRuntime(_settings("wb", CounteRGANWhiteBoxRuntime, folder / "explainer",
                                                  infer_uri=str(folder / "classifier.pt2"), max_rows=20,
                                                  max_request_bytes=4 * 16 * 10))

    async def run(x: np.ndarray) -> Any:
        if not runtime.ready:
            runtime.ready = await runtime.load()
        return await runtime.predict(_request(x, target_class=1))

    with pytest.raises(RequestTooLargeError, match=r"holds 21 instances; this model accepts at most 20 per request "
                                                   r"\(parameters.extra.max_rows\)") as info:
        asyncio.run(run(X[:21]))
    assert info.value.status_code == 413
    with pytest.raises(RequestTooLargeError, match=r"\(704 bytes as float32\); this model accepts at most 640"):
        asyncio.run(run(X[:11]))
    _check(_explanation(asyncio.run(run(X[:10]))), in_process["compas-explainer-whitebox"].explain(X[:10],
                                                                                                   target_class=1))


def test_table_requests_past_the_size_limits_are_a_413(deployment, T):
    """A table's size: 4 bytes per number and each string's length (here 6 numbers and 'Male', 'Caucasian', 'F'
    or the like per row)."""
    runtime = CounteRGANWhiteBoxRuntime(_settings(
        "table", CounteRGANWhiteBoxRuntime, _explainer_dir(deployment, BLACK_BOX) / "explainer",
        infer_uri=str(_classifier_path(deployment)), max_rows=20, max_request_bytes=4 * 6 * 10 + 400))

    async def run(x: pd.DataFrame) -> Any:
        if not hasattr(runtime, "_model"):
            assert await runtime.load(), runtime.load_error
        return await runtime.predict(_request(x, target_class=1))

    with pytest.raises(RequestTooLargeError, match=r"holds 21 instances; this model accepts at most 20"):
        asyncio.run(run(_rows(T, 0, 21)))
    rows = _rows(T, 0, 20)
    size = 4 * 6 * 20 + sum(len(v) for c in ("sex", "race", "c_charge_degree") for v in rows[c])
    with pytest.raises(RequestTooLargeError, match=rf"inputs hold 180 values \({size} bytes counting 4 per number and "
                                                   rf"each string's length\); this model accepts at most 640"):
        asyncio.run(run(rows))
    assert len(_explanation(asyncio.run(run(_rows(T, 0, 5))))["data"]["recourse"]) == 5


def _damaged_copy(deployment: Path, target: Path) -> Path:
    shutil.copytree(_explainer_dir(deployment, "compas-explainer") / "explainer", target)
    generator = target / "generator.pt"
    generator.write_bytes(generator.read_bytes()[:100])
    return target


def test_a_damaged_save_leaves_the_model_not_ready_with_the_file_named(deployment, tmp_path):
    directory = _damaged_copy(deployment, tmp_path / "damaged")
    runtime = CounteRGANBlackBoxRuntime(_settings("bb", CounteRGANBlackBoxRuntime, directory,
                                                  infer_uri="http://127.0.0.1:1/v2/models/c/infer"))
    assert asyncio.run(runtime.load()) is False
    runtime.ready = False
    assert not runtime.ready
    assert f"weight file {directory / 'generator.pt'} cannot be read" in runtime.load_error


def test_load_classifier_reads_each_format(deployment, compas, T, tmp_path):
    _, X_train, X_test, y_train, _ = compas
    model = _TORCH.train(_TORCH.mlp(16, 2, X_train), X_train, y_train, epochs=1)
    torch.jit.save(torch.jit.trace(model, torch.as_tensor(X_train[:2])), str(tmp_path / "model.pt"))
    batch = torch.export.Dim("batch", min=1)
    torch.export.save(torch.export.export(model, (torch.as_tensor(X_train[:2]),), dynamic_shapes=({0: batch},)),
                      str(tmp_path / "model.pt2"))
    with torch.no_grad():
        expected = model(torch.as_tensor(X_test)).numpy()
    for file in ("model.pt", "model.pt2"):
        loaded = load_classifier(tmp_path / file)
        assert isinstance(loaded, torch.nn.Module) and not loaded.training
        loaded.train()  # the explainer switches modes around predictions: an exported program must allow it
        loaded.eval()
        with torch.no_grad():
            np.testing.assert_allclose(loaded(torch.as_tensor(X_test)).numpy(), expected, rtol=1e-5, atol=1e-6)
    proba = load_classifier(_classifier_path(deployment))  # the Pipeline of the raw table
    assert np.array_equal(proba(T), joblib.load(_classifier_path(deployment)).predict_proba(T))
    joblib.dump(object(), tmp_path / "no-proba.joblib")
    with pytest.raises(ValueError, match="has no predict_proba"):
        load_classifier(tmp_path / "no-proba.joblib")
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match="Cannot tell how to load"):
        load_classifier(tmp_path / "model.onnx")
    with pytest.raises(FileNotFoundError, match="No classifier at"):
        load_classifier(tmp_path / "missing.pt2")


def test_the_remote_predictors_request_decodes_into_the_same_dataframe():
    """What the black-box runtime sends the classifier: MLServer's own decoding (as mlserver-sklearn does it)
    gives back the columns, their values and dtypes; categorical and pandas' nullable columns as plain values."""
    frame = pd.DataFrame({"age": np.array([25, 61], dtype=np.int64), "score": [0.5, -1.25],
                          "flag": np.array([True, False]), "sex": ["Male", "Female"],
                          "degree": pd.Categorical(["F", "M"], categories=["F", "M"]),
                          "count": pd.array([3, 0], dtype="Int64"), "name": pd.array(["a", "b"], dtype="string")})
    request = table_request(frame, "predict_proba")
    assert request.parameters.content_type == "pd" and [o.name for o in request.outputs] == ["predict_proba"]
    wire = InferenceRequest.model_validate_json(json.dumps(request.model_dump()))  # through JSON, as sent
    assert {i.name: str(getattr(i.datatype, "value", i.datatype)) for i in wire.inputs} == {
        "age": "INT64", "score": "FP64", "flag": "BOOL", "sex": "BYTES", "degree": "BYTES", "count": "INT64",
        "name": "BYTES"}
    decoded = decode_inference_request(wire)
    assert isinstance(decoded, pd.DataFrame) and list(decoded.columns) == list(frame.columns)
    for name in ("age", "score", "flag", "sex"):
        assert decoded[name].dtype == frame[name].dtype and decoded[name].tolist() == frame[name].tolist(), name
    assert decoded["degree"].tolist() == ["F", "M"] and decoded["count"].tolist() == [3, 0]
    assert decoded["name"].tolist() == ["a", "b"] and decoded["count"].dtype == np.int64


def test_the_documented_clients_request_is_mlservers_pandas_codec(deployment, T):
    """request.py writes the pandas codec without MLServer installed: the same request as PandasCodec's."""
    client = _example_module(deployment, "request")
    assert _example_module(deployment, "compas_table").compas_csv() == compas_csv()  # found without the import
    rows = _rows(T, 0, 3)
    written = client.pandas_request(rows, target_class=1)
    assert written == _body(rows, target_class=1)
    assert json.loads(json.dumps(written))["inputs"][6] == {"name": "sex", "shape": [3, 1], "datatype": "BYTES",
                                                            "data": rows["sex"].tolist(),
                                                            "parameters": {"content_type": "str"}}


def test_the_core_package_does_not_import_mlserver():
    code = ("import sys, alibi_countergan, alibi_countergan.saving\n"
            "print(sorted(m for m in sys.modules if 'mlserver' in m))")
    run = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# real servers: the classifier's, then the explainers'
# ---------------------------------------------------------------------------------------------


class Server:
    """One ``mlserver start`` process on loopback, stopped by :meth:`stop` (SIGTERM, then SIGKILL)."""

    def __init__(self, folder: Path, http_port: int) -> None:
        self.folder, self.url = folder, f"http://127.0.0.1:{http_port}"
        self.log = open(folder / "server.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "mlserver.cli.main", "start", "."], cwd=folder,
                                        env=_env(), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, models: List[str]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        pending = list(models)
        while pending:
            if self.process.poll() is not None:
                pytest.fail(f"mlserver in {self.folder} exited with {self.process.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"mlserver in {self.folder} did not get {pending} ready in {START_TIMEOUT_S} s:\n"
                            f"{self.tail()}")
            try:
                if requests.get(f"{self.url}/v2/models/{pending[0]}/ready", timeout=5).status_code == 200:
                    pending.pop(0)
                    continue
            except requests.RequestException:
                pass
            time.sleep(0.5)

    def tail(self, n: int = 4000) -> str:
        self.log.flush()
        return (self.folder / "server.log").read_text(errors="replace")[-n:]

    def stop(self) -> None:
        stop_process_group(self.process)  # resumed first, in case a test left it stopped
        self.log.close()


def _configure(folder: Path, ports: List[int]) -> None:
    settings = json.loads((folder / "settings.json").read_text())
    settings.update(host="127.0.0.1", http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2])
    (folder / "settings.json").write_text(json.dumps(settings))


CLASSIFIER_TIMEOUT_S = 3
"""The served black-box explainers' classifier_timeout: long enough for a loaded CI machine, short for the test."""


@pytest.fixture(scope="module")
def servers(deployment, request) -> Dict[str, Any]:
    """The classifier's server, ready, then the explainers' server beside it; both stopped at the end.

    The explainers' server also holds a copy of the black-box explainer whose generator.pt is
    truncated: it must fail alone.
    """
    ports = free_ports(6)
    classifier_folder, explainer_folder = deployment / "classifier-server", deployment / "explainer-server"
    _configure(classifier_folder, ports[:3])
    _configure(explainer_folder, ports[3:])
    infer_uri = f"http://127.0.0.1:{ports[0]}/v2/models/compas-classifier/infer"
    blackbox = explainer_folder / "compas-explainer" / "model-settings.json"
    settings = json.loads(blackbox.read_text())
    settings["parameters"]["extra"].update(infer_uri=infer_uri, classifier_timeout=CLASSIFIER_TIMEOUT_S,
                                           classifier_probe_interval=1, max_rows=100)
    blackbox.write_text(json.dumps(settings))
    damaged = explainer_folder / "compas-explainer-damaged"
    _damaged_copy(deployment, damaged / "explainer")
    (damaged / "model-settings.json").write_text(json.dumps(
        {**settings, "name": "compas-explainer-damaged", "parameters": {**settings["parameters"],
                                                                       "uri": "./explainer"}}))
    # a misconfigured explainer: no infer_output, so the classifier answers with labels
    labels = explainer_folder / "compas-explainer-labels"
    labels.mkdir()
    del settings["parameters"]["extra"]["infer_output"]
    settings.update(name="compas-explainer-labels")
    settings["parameters"]["uri"] = "../compas-explainer/artefacts/explainer"
    (labels / "model-settings.json").write_text(json.dumps(settings))

    classifier = Server(classifier_folder, ports[0])
    request.addfinalizer(classifier.stop)
    classifier.wait_ready(["compas-classifier"])
    explainers = Server(explainer_folder, ports[3])
    request.addfinalizer(explainers.stop)
    explainers.wait_ready(["compas-explainer", "compas-explainer-whitebox", "compas-explainer-labels"])
    return {"classifier": classifier.url, "explainer": explainers.url, "classifier_server": classifier,
            "explainer_server": explainers}


def _body(x: Instances, **explain_parameters: Any) -> Dict[str, Any]:
    """A request body: a DataFrame with MLServer's pandas codec (one input per column, strings as BYTES), an array
    as one FP32 tensor."""
    if isinstance(x, pd.DataFrame):
        body = json.loads(PandasCodec.encode_request(x, use_bytes=False).model_dump_json(exclude_none=True))
    else:
        body = {"inputs": [{"name": "X", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    if explain_parameters:
        body.setdefault("parameters", {})["explain_parameters"] = explain_parameters
    return body


def _post(servers: Dict[str, Any], model: str, body: Any, session: Optional[Any] = None, timeout: float = 60) -> Any:
    url = f"{servers['explainer']}/v2/models/{model}/infer"
    if isinstance(body, str):
        return (session or requests).post(url, data=body, headers={"Content-Type": "application/json"},
                                          timeout=timeout)
    return (session or requests).post(url, json=body, timeout=timeout)


def _served(response: Any) -> Dict[str, Any]:
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["outputs"][0]["name"] == "explanation"
    return json.loads(payload["outputs"][0]["data"][0])


def _check(served: Dict[str, Any], expected: Any) -> None:
    """A served explanation equals the in-process one, value for value (float32 values survive JSON exactly).

    For the table explainer that is its whole JSON: the counterfactual table, probabilities, changes and
    recourse; for an array explainer the arrays."""
    if isinstance(expected, TableExplanation):
        assert served == json.loads(expected.to_json())
        return
    data = served["data"]
    assert np.array_equal(np.asarray(data["cf"]["X"], dtype=np.float32), expected.cf["X"])
    assert np.array_equal(np.asarray(data["cf"]["proba"], dtype=np.float32), expected.cf["proba"])
    assert np.array_equal(np.asarray(data["orig_proba"], dtype=np.float32), expected.orig_proba)
    for key in ("orig_class", "target", "success"):
        assert np.array_equal(np.asarray(data[key]), np.asarray(expected.data[key])), key
    assert np.array_equal(np.asarray(data["cf"]["class"]), np.asarray(expected.cf["class"]))
    assert np.array_equal(np.asarray(data["residual"], dtype=np.float32), expected.residual)
    assert served["meta"] == json.loads(json.dumps(expected.meta))


@pytest.mark.parametrize("model", [BLACK_BOX, WHITE_BOX])
def test_one_instance_served_equals_in_process(servers, in_process, data, model):
    x = _rows(data[model], 0, 1)
    served = _served(_post(servers, model, _body(x, target_class=1)))
    expected = in_process[model].explain(x, target_class=1)
    _check(served, expected)
    assert served["data"]["target"] in (1, [1]) and isinstance(np.ravel(served["data"]["success"])[0], (bool, np.bool_))


@pytest.mark.parametrize("model", [BLACK_BOX, WHITE_BOX])
@pytest.mark.parametrize("target", [1, "other", "per-row"])
def test_a_batch_served_equals_in_process(servers, in_process, data, model, target):
    batch = _rows(data[model], 0, 64)
    if target == "per-row":
        target = [int(t) for t in np.arange(len(batch)) % 2]
    served = _served(_post(servers, model, _body(batch, target_class=target)))
    _check(served, in_process[model].explain(batch, target_class=target))
    assert len(served["data"]["cf"]["X"]["data"] if model == BLACK_BOX else served["data"]["cf"]["X"]) == len(batch)


def _split_frame(value: Dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(value["data"], columns=value["columns"], index=value["index"])


def test_the_table_explainer_answers_in_the_tables_columns_with_readable_changes(servers, T):
    """People as rows of the raw table in, the counterfactuals in the same columns out: counts whole, categories
    known, immutable columns kept, and the changes listed and said in words; no fractional count anywhere."""
    people = _rows(T, 0, 100)
    response = _post(servers, BLACK_BOX, _body(people, target_class=1))
    served = _served(response)["data"]
    cf = _split_frame(served["cf"]["X"])
    assert list(cf.columns) == list(T.columns) and cf.index.tolist() == list(range(100))
    counts = ["age", "priors_count", "days_b_screening_arrest", "juv_fel_count", "juv_misd_count", "juv_other_count"]
    positions = [served["cf"]["X"]["columns"].index(c) for c in counts]
    assert all(type(row[j]) is int for row in served["cf"]["X"]["data"] for j in positions)  # JSON integers
    for column in ("sex", "race", "c_charge_degree"):
        assert set(cf[column]) <= set(T[column]), column
    for column in ("age", "sex", "race", "juv_fel_count", "juv_misd_count", "juv_other_count"):  # immutable
        assert cf[column].tolist() == people[column].tolist(), column
    assert (cf["priors_count"] <= people["priors_count"]).all()  # monotone: priors may only decrease
    changes = _split_frame(served["changes"])
    assert list(changes.columns) == ["instance", "feature", "from", "to"] and len(changes) > 0
    for row in changes.itertuples(index=False):
        assert people.loc[row.instance, row.feature] == row[2] and cf.loc[row.instance, row.feature] == row[3]
        assert f"{row.feature}: {row[2]} -> {row[3]}" in served["recourse"][row.instance]
        assert not isinstance(row[2], float) and not isinstance(row[3], float)
    unchanged = set(range(100)) - set(changes["instance"])
    assert all(served["recourse"][i] == "no change" for i in unchanged)
    asked = [i for i, c in enumerate(served["orig_class"]) if c == 0]
    assert asked and np.mean([served["success"][i] for i in asked]) >= 0.8
    assert all(served["recourse"][i] != "no change" for i in asked if served["success"][i])
    assert response.headers["x-seldon-alibi-method"] == "CounteRGAN"


def test_the_classifier_requests_of_each_explanation_are_counted(servers, deployment, T, X):
    """``parameters.classifier_requests`` is the number of requests the explanation sent to the classifier's
    server: the number of predict_proba calls the same explanation makes in process."""
    classifier = joblib.load(_classifier_path(deployment))
    calls: List[int] = []

    def counted(frame: pd.DataFrame) -> np.ndarray:
        calls.append(len(frame))
        return classifier.predict_proba(frame)

    explainer = CounteRGAN.load(_explainer_dir(deployment, BLACK_BOX) / "explainer", counted)
    for rows in (_rows(T, 0, 1), _rows(T, 1, 2), _rows(T, 0, 64)):
        calls.clear()
        explainer.explain(rows, target_class=1)
        response = _post(servers, BLACK_BOX, _body(rows, target_class=1)).json()
        assert response["parameters"]["classifier_requests"] == len(calls) >= 1, (calls, response["parameters"])
    whitebox = _post(servers, WHITE_BOX, _body(X[:1], target_class=1))
    assert whitebox.status_code == 200 and "classifier_requests" not in whitebox.json().get("parameters", {})


def test_the_explainers_default_target_applies_without_explain_parameters(servers, in_process, T):
    body = _body(_rows(T, 0, 5))
    del body["parameters"]  # no content_type either: an explainer fitted on a table reads its inputs as columns
    _check(_served(_post(servers, BLACK_BOX, body)), in_process[BLACK_BOX].explain(_rows(T, 0, 5)))


def _quantiles_ms(seconds: List[float]) -> str:
    values = 1000 * np.asarray(seconds)
    return f"p50 {np.median(values):.1f} ms, p99 {np.quantile(values, 0.99):.1f} ms"


def test_hundreds_of_concurrent_requests_are_all_answered_correctly(servers, in_process, data, capsys):
    n_requests, n_clients = 300, 16
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 400, n_requests)
    targets = rng.choice([0, 1, -1], n_requests)  # -1: 'other'
    models = rng.choice([BLACK_BOX, WHITE_BOX], n_requests)
    local = threading_local_session()

    def instance(i: int) -> Instances:
        return _rows(data[models[i]], int(rows[i]), int(rows[i]) + 1)

    def call(i: int) -> Any:
        target = "other" if targets[i] == -1 else int(targets[i])
        start = time.perf_counter()
        response = _post(servers, models[i], _body(instance(i), target_class=target), local.get())
        return response, time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(n_clients) as pool:
        results = list(pool.map(call, range(n_requests)))
    wall = time.perf_counter() - start
    for i, (response, _) in enumerate(results):
        target = "other" if targets[i] == -1 else int(targets[i])
        _check(_served(response), in_process[models[i]].explain(instance(i), target_class=target))

    # in-process single-instance latency of the same explainers, for the report
    in_process_s = {}
    for model in (BLACK_BOX, WHITE_BOX):
        times = []
        for i in range(200):
            x = _rows(data[model], i, i + 1)
            t0 = time.perf_counter()
            in_process[model].explain(x, target_class=1)
            times.append(time.perf_counter() - t0)
        in_process_s[model] = times
    # one client, refined and unrefined requests interleaved, so that the machine's load weighs on both alike
    sequential: Dict[bool, List[float]] = {True: [], False: []}
    requests_per_explanation: Dict[bool, List[int]] = {True: [], False: []}
    session = requests.Session()
    for i in range(100):
        for refine in (True, False):
            t0 = time.perf_counter()
            response = _post(servers, BLACK_BOX, _body(_rows(data[BLACK_BOX], i, i + 1), target_class=1,
                                                       refine=refine), session)
            _served(response)
            sequential[refine].append(time.perf_counter() - t0)
            requests_per_explanation[refine].append(response.json()["parameters"]["classifier_requests"])
    with capsys.disabled():
        for model in (BLACK_BOX, WHITE_BOX):
            served = [t for (_, t), m in zip(results, models) if m == model]
            print(f"\n[serving latency] {model}: served single instance, {n_clients} concurrent clients: "
                  f"{_quantiles_ms(served)} over {len(served)} requests; in-process explain: "
                  f"{_quantiles_ms(in_process_s[model])}")
        print(f"[serving latency] {BLACK_BOX}: throughput under load {n_requests / wall:.0f} requests/s")
        for refine in (True, False):
            counts = np.asarray(requests_per_explanation[refine])
            print(f"[serving latency] {BLACK_BOX}, one client, refine={refine}: {_quantiles_ms(sequential[refine])}; "
                  f"classifier requests per explanation: median {np.median(counts):g}, max {counts.max()}, "
                  f"mean {counts.mean():.2f}")
        ratio = np.median(sequential[True]) / np.median(sequential[False])
        print(f"[serving latency] {BLACK_BOX}, one client: refined p50 / refine=False p50 = {ratio:.2f}")


def threading_local_session() -> Any:
    """One requests.Session per client thread (keep-alive connections, as a real client would use)."""
    import threading

    store = threading.local()

    class Sessions:
        def get(self) -> Any:
            if not hasattr(store, "session"):
                store.session = requests.Session()
            return store.session

    return Sessions()


_NAN_LITERAL = ('{"inputs": [{"name": "X", "shape": [1, 16], "datatype": "FP32", "data": [NaN, '
                + ", ".join(["0.0"] * 15) + "]}]}")

ARRAY_MALFORMED = {
    "wrong shape": (lambda x: _body(x[:1, :5], target_class=1), 400, r"X has shape \(1, 5\); expected one instance"),
    "data do not fill the shape": (
        lambda x: {"inputs": [{"name": "X", "shape": [1, 16], "datatype": "FP32", "data": x[0, :10].tolist()}]},
        400, "cannot reshape array of size 10 into shape"),
    "NaN as null": (
        lambda x: {"inputs": [{"name": "X", "shape": [1, 16], "datatype": "FP32", "data": [None] + x[0, 1:].tolist()}]},
        400, "contains NaN or infinite values"),
    "NaN literal": (lambda x: _NAN_LITERAL, 422, "JSON decode error"),
    "unknown target class": (lambda x: _body(x[:1], target_class=5), 400, "class 5 is out of range"),
    "target list of the wrong length": (lambda x: _body(x[:3], target_class=[0, 1]), 400, "2 entries for 3 instances"),
    "target of the wrong type": (lambda x: _body(x[:1], target_class="best"), 400, "target_class='best' is not"),
    "unknown explain parameter": (lambda x: _body(x[:1], colour="red"), 400,
                                  r"Unknown explain parameter\(s\) \['colour'\]"),
    "explain_parameters not an object": (
        lambda x: {**_body(x[:1]), "parameters": {"explain_parameters": [1]}}, 400, "must be an object"),
    "no input tensor": (lambda x: {"inputs": []}, 400, "The request has 0 input tensors; send exactly one"),
    "two input tensors": (lambda x: {"inputs": _body(x[:1])["inputs"] * 2}, 400, "has 2 input tensors"),
    "missing inputs field": (lambda x: {"parameters": {}}, 422, r"\"loc\":\[\"body\",\"inputs\"\]"),
    "strings instead of numbers": (
        lambda x: {"inputs": [{"name": "X", "shape": [1, 2], "datatype": "BYTES", "data": ["a", "b"]}]}, 400,
        "must hold numbers"),
    "not one-hot": (lambda x: _body(np.where(np.arange(16) >= 6, 1.0, x[:1]).astype(np.float32), target_class=1),
                    400, "one-hot"),
}


def _column(body: Dict[str, Any], name: str) -> Dict[str, Any]:
    return next(i for i in body["inputs"] if i["name"] == name)


def _edited(rows: pd.DataFrame, edit: Callable[[Dict[str, Any]], Any], **explain_parameters: Any) -> Dict[str, Any]:
    """A pandas-codec body of ``rows`` after ``edit`` changed it in place."""
    body = _body(rows, **explain_parameters)
    edit(body)
    return body


def _set(name: str, **fields: Any) -> Callable[[Dict[str, Any]], Any]:
    return lambda body: _column(body, name).update(fields)


TABLE_MALFORMED = {
    "a column missing": (lambda t: _body(t.drop(columns="race")), 400,
                         r"fitted on a table: send one input per column.*lacks the column\(s\) \['race'\]"),
    "an unknown column": (lambda t: _body(t.assign(colour="red")), 400, r"has the unknown input\(s\) \['colour'\]"),
    "a column twice": (lambda t: _edited(t, lambda b: b["inputs"].append(_column(b, "age"))), 400,
                       r"repeats the input\(s\) \['age'\]"),
    "the array form": (lambda t: {"inputs": [{"name": "X", "shape": [1, 16], "datatype": "FP32", "data": [0.0] * 16}]},
                       400, r"lacks the column\(s\) \['age', .*has the unknown input\(s\) \['X'\]"),
    "no inputs": (lambda t: {"inputs": []}, 400, r"fitted on a table: .*lacks the column\(s\) \['age', "),
    "an unknown category": (lambda t: _body(t.assign(sex="Unknown")), 400,
                            r"column 'sex' holds the unknown category 'Unknown' \(row 0\); its known categories are "
                            r"\['Female', 'Male'\]"),
    "a string in a count": (lambda t: _edited(t, _set("age", datatype="BYTES", data=["twenty"])), 400,
                            "Column 'age' holds integer numbers: send it as numbers .* not BYTES"),
    "a number for a category": (lambda t: _edited(t, _set("race", datatype="INT64", data=[3], parameters=None)), 400,
                                r"Column 'race' holds categories \['African-American', .*send its values as strings "
                                r"\(BYTES\), got INT64"),
    "a fractional count": (lambda t: _edited(t, _set("priors_count", datatype="FP64", data=[2.5])), 400,
                           r"Column 'priors_count' holds 2.5 \(row 0\); send whole numbers"),
    "a null string": (lambda t: _edited(t, _set("sex", data=[None])), 400,
                      r"Column 'sex' has a missing value \(null, row 0\)"),
    "a null number": (lambda t: _edited(t, _set("age", data=[None])), 400,
                      r"Column 'age' has a missing value \(null, row 0\)"),
    "columns of different lengths": (lambda t: _edited(t, _set("age", shape=[2, 1], data=[30, 40])), 400,
                                     r"different numbers of rows \(\{'age': 2, 'priors_count': 1"),
    "data do not fill the shape": (lambda t: _edited(t, lambda b: [i.update(shape=[2, 1], data=i["data"] * 2)
                                                                   for i in b["inputs"] if i["name"] != "age"]
                                                     + [_set("age", shape=[2, 1])(b)]), 400,
                                   r"Input 'age' holds 1 values for its shape \[2, 1\]"),
    "two values per row": (lambda t: _edited(t, _set("age", shape=[1, 2], data=[30, 40])), 400,
                           r"Input 'age' has shape \[1, 2\]; a column's input has shape \[n\] or \[n, 1\]"),
    "a count far out of range": (lambda t: _edited(t, _set("priors_count", data=[10 ** 9])), 400,
                                 r"'priors_count'\) holds 1e\+09 \(row 0\).*Check the column's units"),
    "an unknown target class": (lambda t: _body(t, target_class=5), 400, "class 5 is out of range"),
    "an unknown column frozen": (lambda t: _body(t, target_class=1, immutable_features=["colour"]), 400,
                                 r"unknown column 'colour'"),
    "missing inputs field": (lambda t: {"parameters": {"content_type": "pd"}}, 422,
                             r"\"loc\":\[\"body\",\"inputs\"\]"),
}


def _valid_request_still_answered(servers: Dict[str, Any], in_process: Dict[str, CounteRGAN], model: str,
                                  x: Instances) -> None:
    _check(_served(_post(servers, model, _body(x, target_class=1))), in_process[model].explain(x, target_class=1))


@pytest.mark.parametrize("case", list(ARRAY_MALFORMED))
def test_malformed_array_requests_get_an_error_naming_the_problem_and_the_server_keeps_serving(servers, in_process, X,
                                                                                               case):
    make, status, message = ARRAY_MALFORMED[case]
    response = _post(servers, WHITE_BOX, make(X))
    assert response.status_code == status, response.text
    assert re.search(message, response.text), response.text
    _valid_request_still_answered(servers, in_process, WHITE_BOX, X[7:9])


@pytest.mark.parametrize("case", list(TABLE_MALFORMED))
def test_malformed_table_requests_get_an_error_naming_the_problem_and_the_server_keeps_serving(servers, in_process, T,
                                                                                               case):
    make, status, message = TABLE_MALFORMED[case]
    response = _post(servers, BLACK_BOX, make(_rows(T, 0, 1)))
    assert response.status_code == status, response.text
    assert re.search(message, response.json()["error"] if status == 400 else response.text), response.text
    _valid_request_still_answered(servers, in_process, BLACK_BOX, _rows(T, 7, 9))


def test_a_classifier_answering_labels_is_reported_with_the_setting_to_fix(servers, in_process, T):
    response = _post(servers, "compas-explainer-labels", _body(_rows(T, 0, 2), target_class=1))
    assert response.status_code == 502, response.text
    assert "set parameters.extra.infer_output" in response.json()["error"]
    _valid_request_still_answered(servers, in_process, BLACK_BOX, _rows(T, 0, 2))


@pytest.mark.parametrize("model", [BLACK_BOX, WHITE_BOX])
def test_the_documented_python_client_prints_the_recourse(servers, deployment, model):
    run = subprocess.run([sys.executable, str(deployment / "request.py"), "--url", servers["explainer"], "--people",
                          "2", "--model", model], env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert run.stdout.count("P(did not reoffend)") == 2, run.stdout
    changes = [lines[i + 1].strip() for i, line in enumerate(lines) if line.startswith("person ")]
    assert all(re.fullmatch(r"(no change|[a-z_]+(=[A-Za-z -]+)?: \S+( \S+)? -> \S+( \S+)?(; .*)?)", c)
               for c in changes), run.stdout
    assert not re.search(r"(priors_count|days_b_screening_arrest): -?\d+\.\d", run.stdout), run.stdout  # whole counts


def test_a_request_past_max_rows_is_a_413_and_the_server_keeps_serving(servers, in_process, T):
    response = _post(servers, BLACK_BOX, _body(_rows(T, 0, 101), target_class=1))
    assert response.status_code == 413, response.text
    assert "holds 101 instances; this model accepts at most 100" in response.json()["error"]
    _valid_request_still_answered(servers, in_process, BLACK_BOX, _rows(T, 0, 100))


def test_a_damaged_explainer_fails_alone(servers, in_process, data):
    url = servers["explainer"]
    assert requests.get(f"{url}/v2/models/compas-explainer-damaged/ready", timeout=10).status_code == 400
    response = _post(servers, "compas-explainer-damaged", _body(_rows(data[BLACK_BOX], 0, 1), target_class=1))
    assert response.status_code == 400 and "not ready" in response.json()["error"], response.text
    assert "compas-explainer-damaged/explainer/generator.pt cannot be read" in servers["explainer_server"].tail(10 ** 9)
    for model in (BLACK_BOX, WHITE_BOX):
        assert requests.get(f"{url}/v2/models/{model}/ready", timeout=10).status_code == 200
        _valid_request_still_answered(servers, in_process, model, _rows(data[model], 0, 3))


def _wait_for_status(url: str, status: int, within_s: float) -> float:
    """Seconds until GET ``url`` answers ``status`` (fails after ``within_s``)."""
    start = time.monotonic()
    while True:
        try:
            if requests.get(url, timeout=5).status_code == status:
                return time.monotonic() - start
        except requests.RequestException:
            pass
        if time.monotonic() - start > within_s:
            pytest.fail(f"{url} did not answer {status} within {within_s} s")
        time.sleep(0.2)


def test_a_frozen_classifier_gives_504_within_the_timeout_and_not_ready(servers, in_process, data):
    """SIGSTOP the classifier's server: explain answers 504 in about classifier_timeout, readiness turns off;
    after SIGCONT both come back."""
    classifier = servers["classifier_server"]
    ready = f"{servers['explainer']}/v2/models/{BLACK_BOX}/ready"
    os.killpg(classifier.process.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        response = _post(servers, BLACK_BOX, _body(_rows(data[BLACK_BOX], 0, 2), target_class=1), timeout=60)
        elapsed = time.monotonic() - start
        assert response.status_code == 504, response.text
        assert f"classifier at {servers['classifier']}/v2/models/compas-classifier/infer did not answer within " \
               f"{CLASSIFIER_TIMEOUT_S} s" in response.json()["error"]
        assert elapsed < CLASSIFIER_TIMEOUT_S + 5  # bounded by the timeout: a table needs no metadata call
        _wait_for_status(ready, 400, within_s=3 * CLASSIFIER_TIMEOUT_S + 5)
        # the white-box explainer does not call the classifier's server: it keeps serving
        _valid_request_still_answered(servers, in_process, WHITE_BOX, _rows(data[WHITE_BOX], 0, 2))
    finally:
        os.killpg(classifier.process.pid, signal.SIGCONT)
    _wait_for_status(ready, 200, within_s=3 * CLASSIFIER_TIMEOUT_S + 5)
    _valid_request_still_answered(servers, in_process, BLACK_BOX, _rows(data[BLACK_BOX], 0, 2))
