"""The MLServer runtimes: in-process checks, then the example deployment served by real ``mlserver start`` processes.

Needs the serving extra (``tox -e serving``); skipped where MLServer is not installed.
"""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pytest

pytest.importorskip("mlserver")
pytest.importorskip("mlserver_alibi_explain")
requests = pytest.importorskip("requests")

import joblib  # noqa: E402
import torch  # noqa: E402
from conftest import REPO  # noqa: E402
from mlserver.errors import MLServerError  # noqa: E402
from mlserver.settings import ModelSettings  # noqa: E402
from mlserver.types import InferenceRequest  # noqa: E402

from alibi_countergan import CounteRGAN  # noqa: E402
from alibi_countergan.serving import (  # noqa: E402
    ClassifierError,
    ClassifierTimeoutError,
    CounteRGANBlackBoxRuntime,
    CounteRGANWhiteBoxRuntime,
    ExplainRequestError,
    RequestTooLargeError,
    load_classifier,
)
from alibi_countergan.testing import TorchFramework, free_ports, stop_process_group  # noqa: E402

pytestmark = pytest.mark.serving

EXAMPLE = REPO / "examples" / "serving"
TRAIN_STEPS = 300
START_TIMEOUT_S = 180

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
    return compas[2][:400]


# ---------------------------------------------------------------------------------------------
# in-process: the runtime classes driven directly
# ---------------------------------------------------------------------------------------------


def _settings(name: str, implementation: type, uri: Path, **extra: Any) -> ModelSettings:
    return ModelSettings(name=name, implementation=implementation, parameters={"uri": str(uri), "extra": extra})


def _request(x: np.ndarray, **explain_parameters: Any) -> InferenceRequest:
    body: Dict[str, Any] = {"inputs": [{"name": "X", "shape": list(x.shape), "datatype": "FP32",
                                        "data": x.ravel().tolist()}]}
    if explain_parameters:
        body["parameters"] = {"explain_parameters": explain_parameters}
    return InferenceRequest.model_validate(body)


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


def test_runtime_with_explainer_batch_false_takes_one_instance_per_request(deployment, in_process, X):
    runtime = CounteRGANWhiteBoxRuntime(_settings(
        "one", CounteRGANWhiteBoxRuntime, _explainer_dir(deployment, "compas-explainer") / "explainer",
        infer_uri=str(_classifier_path(deployment)), explainer_batch=False))

    async def run(x: np.ndarray) -> Any:
        if not hasattr(runtime, "_model"):
            await runtime.load()
        return await runtime.predict(_request(x, target_class=1))

    _check(_explanation(asyncio.run(run(X[:1]))), in_process["compas-explainer"].explain(X[:1], target_class=1))
    with pytest.raises(ExplainRequestError, match=r"explainer_batch=false: send one instance.*\[2, 16\]"):
        asyncio.run(run(X[:2]))


def test_runtime_settings_are_checked(deployment):
    directory = _explainer_dir(deployment, "compas-explainer") / "explainer"
    with pytest.raises(MLServerError, match="init_parameters"):
        CounteRGANBlackBoxRuntime(_settings("x", CounteRGANBlackBoxRuntime, directory, infer_uri="http://x/infer",
                                            init_parameters={"shape": [1, 16]}))
    with pytest.raises(MLServerError, match="parameters.uri"):
        CounteRGANBlackBoxRuntime(ModelSettings(name="x", implementation=CounteRGANBlackBoxRuntime,
                                                parameters={"extra": {"infer_uri": "http://x/infer"}}))


def test_an_unreachable_classifier_is_a_502_naming_its_address(deployment, X):
    port = free_ports(1)[0]
    uri = f"http://127.0.0.1:{port}/v2/models/nothing/infer"
    runtime = CounteRGANBlackBoxRuntime(_settings("bb", CounteRGANBlackBoxRuntime,
                                                  _explainer_dir(deployment, "compas-explainer") / "explainer",
                                                  infer_uri=uri))

    async def run() -> Any:
        await runtime.load()  # loading does not call the classifier
        return await runtime.predict(_request(X[:1]))

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


def _explain_once(runtime: Any, x: np.ndarray) -> Any:
    async def run() -> Any:
        try:
            assert await runtime.load(), runtime.load_error
            return await runtime.predict(_request(x))
        finally:
            await runtime.unload()

    return asyncio.run(run())


def test_a_classifier_that_does_not_answer_in_time_is_a_504_naming_it(deployment, X):
    classifier = _FakeClassifier("slow", delay_s=3.0)
    try:
        runtime = _black_box(deployment, classifier.uri, classifier_timeout=0.5, classifier_probe_interval=0)
        start = time.monotonic()
        with pytest.raises(ClassifierTimeoutError, match=f"classifier at {classifier.uri} did not answer within "
                                                         r"0.5 s.*\(parameters.extra.classifier_timeout\)") as info:
            _explain_once(runtime, X[:1])
        assert time.monotonic() - start < 2.5  # the timeout, not the classifier's 3 s
        assert info.value.status_code == 504
    finally:
        classifier.close()


@pytest.mark.parametrize("code", [500, 503, 400, 404])
def test_an_http_error_from_the_classifier_is_a_502_naming_it(deployment, X, code):
    classifier = _FakeClassifier(str(code))
    try:
        with pytest.raises(ClassifierError, match=f"classifier at {classifier.uri}.* answered HTTP {code}.*the model "
                                                  f"is restarting") as info:
            _explain_once(_black_box(deployment, classifier.uri, classifier_probe_interval=0,
                                     classifier_headers={"Seldon-Model": "compas-classifier"}), X[:1])
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


def test_load_classifier_reads_each_format(deployment, compas, tmp_path):
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
    proba = load_classifier(_classifier_path(deployment))
    assert np.array_equal(proba(X_test), joblib.load(_classifier_path(deployment)).predict_proba(X_test))
    joblib.dump(object(), tmp_path / "no-proba.joblib")
    with pytest.raises(ValueError, match="has no predict_proba"):
        load_classifier(tmp_path / "no-proba.joblib")
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match="Cannot tell how to load"):
        load_classifier(tmp_path / "model.onnx")
    with pytest.raises(FileNotFoundError, match="No classifier at"):
        load_classifier(tmp_path / "missing.pt2")


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


def _body(x: np.ndarray, **explain_parameters: Any) -> Dict[str, Any]:
    return {"inputs": [{"name": "X", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}],
            "parameters": {"explain_parameters": explain_parameters}}


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
    """A served explanation equals the in-process one, value for value (float32 values survive JSON exactly)."""
    data = served["data"]
    assert np.array_equal(np.asarray(data["cf"]["X"], dtype=np.float32), expected.cf["X"])
    assert np.array_equal(np.asarray(data["cf"]["proba"], dtype=np.float32), expected.cf["proba"])
    assert np.array_equal(np.asarray(data["orig_proba"], dtype=np.float32), expected.orig_proba)
    for key in ("orig_class", "target", "success"):
        assert np.array_equal(np.asarray(data[key]), np.asarray(expected.data[key])), key
    assert np.array_equal(np.asarray(data["cf"]["class"]), np.asarray(expected.cf["class"]))
    assert np.array_equal(np.asarray(data["residual"], dtype=np.float32), expected.residual)
    assert served["meta"] == json.loads(json.dumps(expected.meta))


@pytest.mark.parametrize("model", ["compas-explainer", "compas-explainer-whitebox"])
def test_one_instance_served_equals_in_process(servers, in_process, X, model):
    served = _served(_post(servers, model, _body(X[:1], target_class=1)))
    expected = in_process[model].explain(X[:1], target_class=1)
    _check(served, expected)
    assert served["data"]["target"] == 1 and isinstance(served["data"]["success"], bool)


@pytest.mark.parametrize("model", ["compas-explainer", "compas-explainer-whitebox"])
@pytest.mark.parametrize("target", [1, "other", "per-row"])
def test_a_batch_served_equals_in_process(servers, in_process, X, model, target):
    batch = X[:64]
    if target == "per-row":
        target = [int(t) for t in np.arange(len(batch)) % 2]
    served = _served(_post(servers, model, _body(batch, target_class=target)))
    _check(served, in_process[model].explain(batch, target_class=target))
    assert len(served["data"]["cf"]["X"]) == len(batch)


def test_the_explainers_default_target_applies_without_explain_parameters(servers, in_process, X):
    body = _body(X[:5])
    del body["parameters"]
    _check(_served(_post(servers, "compas-explainer", body)), in_process["compas-explainer"].explain(X[:5]))


def _quantiles_ms(seconds: List[float]) -> str:
    values = 1000 * np.asarray(seconds)
    return f"p50 {np.median(values):.1f} ms, p99 {np.quantile(values, 0.99):.1f} ms"


def test_hundreds_of_concurrent_requests_are_all_answered_correctly(servers, in_process, X, capsys):
    n_requests, n_clients = 300, 16
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(X), n_requests)
    targets = rng.choice([0, 1, -1], n_requests)  # -1: 'other'
    models = rng.choice(["compas-explainer", "compas-explainer-whitebox"], n_requests)
    local = threading_local_session()

    def call(i: int) -> Any:
        target = "other" if targets[i] == -1 else int(targets[i])
        start = time.perf_counter()
        response = _post(servers, models[i], _body(X[rows[i]:rows[i] + 1], target_class=target), local.get())
        return response, time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(n_clients) as pool:
        results = list(pool.map(call, range(n_requests)))
    wall = time.perf_counter() - start
    for i, (response, _) in enumerate(results):
        target = "other" if targets[i] == -1 else int(targets[i])
        _check(_served(response), in_process[models[i]].explain(X[rows[i]:rows[i] + 1], target_class=target))

    # in-process single-instance latency of the same explainers, for the report
    in_process_s = {}
    for model in ("compas-explainer", "compas-explainer-whitebox"):
        times = []
        for i in range(200):
            t0 = time.perf_counter()
            in_process[model].explain(X[i:i + 1], target_class=1)
            times.append(time.perf_counter() - t0)
        in_process_s[model] = times
    sequential = []
    session = requests.Session()
    for i in range(100):
        t0 = time.perf_counter()
        _served(_post(servers, "compas-explainer", _body(X[i:i + 1], target_class=1), session))
        sequential.append(time.perf_counter() - t0)
    with capsys.disabled():
        for model in ("compas-explainer", "compas-explainer-whitebox"):
            served = [t for (_, t), m in zip(results, models) if m == model]
            print(f"\n[serving latency] {model}: served single instance, {n_clients} concurrent clients: "
                  f"{_quantiles_ms(served)} over {len(served)} requests; in-process explain: "
                  f"{_quantiles_ms(in_process_s[model])}")
        print(f"[serving latency] compas-explainer, one client: {_quantiles_ms(sequential)}; "
              f"throughput under load {n_requests / wall:.0f} requests/s")


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

MALFORMED = {
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


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_requests_get_an_error_naming_the_problem_and_the_server_keeps_serving(servers, in_process, X,
                                                                                         case):
    make, status, message = MALFORMED[case]
    response = _post(servers, "compas-explainer", make(X))
    assert response.status_code == status, response.text
    assert __import__("re").search(message, response.text), response.text
    _check(_served(_post(servers, "compas-explainer", _body(X[7:9], target_class=1))),
           in_process["compas-explainer"].explain(X[7:9], target_class=1))


def test_a_classifier_answering_labels_is_reported_with_the_setting_to_fix(servers, in_process, X):
    response = _post(servers, "compas-explainer-labels", _body(X[:2], target_class=1))
    assert response.status_code == 502, response.text
    assert "set parameters.extra.infer_output" in response.json()["error"]
    _check(_served(_post(servers, "compas-explainer", _body(X[:2], target_class=1))),
           in_process["compas-explainer"].explain(X[:2], target_class=1))


def test_the_documented_python_client_prints_the_recourse(servers, deployment):
    run = subprocess.run([sys.executable, str(deployment / "request.py"), "--url", servers["explainer"], "--people",
                          "2", "--model", "compas-explainer-whitebox"], env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("P(did not reoffend)") == 2, run.stdout


def test_a_request_past_max_rows_is_a_413_and_the_server_keeps_serving(servers, in_process, X):
    response = _post(servers, "compas-explainer", _body(X[:101], target_class=1))
    assert response.status_code == 413, response.text
    assert "holds 101 instances; this model accepts at most 100" in response.json()["error"]
    _check(_served(_post(servers, "compas-explainer", _body(X[:100], target_class=1))),
           in_process["compas-explainer"].explain(X[:100], target_class=1))


def test_a_damaged_explainer_fails_alone(servers, in_process, X):
    url = servers["explainer"]
    assert requests.get(f"{url}/v2/models/compas-explainer-damaged/ready", timeout=10).status_code == 400
    response = _post(servers, "compas-explainer-damaged", _body(X[:1], target_class=1))
    assert response.status_code == 400 and "not ready" in response.json()["error"], response.text
    assert "compas-explainer-damaged/explainer/generator.pt cannot be read" in servers["explainer_server"].tail(10 ** 9)
    for model in ("compas-explainer", "compas-explainer-whitebox"):
        assert requests.get(f"{url}/v2/models/{model}/ready", timeout=10).status_code == 200
        _check(_served(_post(servers, model, _body(X[:3], target_class=1))), in_process[model].explain(X[:3],
                                                                                                         target_class=1))


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


def test_a_frozen_classifier_gives_504_within_the_timeout_and_not_ready(servers, in_process, X):
    """SIGSTOP the classifier's server: explain answers 504 in about classifier_timeout, readiness turns off;
    after SIGCONT both come back."""
    classifier = servers["classifier_server"]
    ready = f"{servers['explainer']}/v2/models/compas-explainer/ready"
    os.killpg(classifier.process.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        response = _post(servers, "compas-explainer", _body(X[:2], target_class=1), timeout=60)
        elapsed = time.monotonic() - start
        assert response.status_code == 504, response.text
        assert f"classifier at {servers['classifier']}/v2/models/compas-classifier/infer did not answer within " \
               f"{CLASSIFIER_TIMEOUT_S} s" in response.json()["error"]
        assert elapsed < 2 * CLASSIFIER_TIMEOUT_S + 5  # bounded by the timeout (metadata is cached: one call)
        _wait_for_status(ready, 400, within_s=3 * CLASSIFIER_TIMEOUT_S + 5)
        # the white-box explainer does not call the classifier's server: it keeps serving
        _check(_served(_post(servers, "compas-explainer-whitebox", _body(X[:2], target_class=1))),
               in_process["compas-explainer-whitebox"].explain(X[:2], target_class=1))
    finally:
        os.killpg(classifier.process.pid, signal.SIGCONT)
    _wait_for_status(ready, 200, within_s=3 * CLASSIFIER_TIMEOUT_S + 5)
    _check(_served(_post(servers, "compas-explainer", _body(X[:2], target_class=1))),
           in_process["compas-explainer"].explain(X[:2], target_class=1))
