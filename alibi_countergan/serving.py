"""MLServer runtimes serving a saved CounteRGAN (install ``alibi-countergan[serving]``).

Both runtimes are the explainer runtimes of ``mlserver-alibi-explain`` with CounteRGAN plugged
in; name one in a ``model-settings.json``'s ``"implementation"``:

``alibi_countergan.serving.CounteRGANBlackBoxRuntime``
    Calls the classifier through its V2 inference endpoint, ``parameters.extra.infer_uri``
    (``infer_output`` names the classifier's probability output, ``predict_proba`` for
    MLServer's scikit-learn runtime). For an explainer fitted black-box.
``alibi_countergan.serving.CounteRGANWhiteBoxRuntime``
    Loads the classifier in-process from the local path ``parameters.extra.infer_uri``
    (relative paths are relative to the ``model-settings.json``): a ``torch.export`` program
    (``.pt2``), TorchScript (``.pt``, ``.pth``), a Keras model (``.keras``, ``.h5`` or a
    SavedModel directory) or a scikit-learn model (``.joblib``, ``.pkl``; its ``predict_proba``).
    Needed for an explainer fitted white-box; any explainer can use it to skip the HTTP hop.

``parameters.uri`` is the directory written by ``explainer.save(path)``; it is read with
:func:`alibi_countergan.saving.load`, which reads only JSON and weight files (no pickle).
``explainer_batch`` defaults to true: a request's input is a batch ``[n, ...]`` explained in
one call (false accepts one instance per request). The request's
``parameters.explain_parameters`` are passed to :meth:`CounteRGAN.explain` by name
(``target_class`` and any explain-time option that ``explain`` accepts); an unknown name, a
malformed input or an invalid value is answered with HTTP 400 and a message naming the problem.

This module imports MLServer; :mod:`alibi_countergan` itself never imports it.
"""

import asyncio
import functools
import inspect
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import requests
from alibi.api.interfaces import Explanation
from fastapi import status
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.settings import ModelSettings
from mlserver.types import InferenceRequest, InferenceResponse, MetadataModelResponse
from mlserver.utils import to_absolute_path
from mlserver_alibi_explain.common import SELDON_SKIP_LOGGING_HEADER, construct_metadata_url, to_v2_inference_request
from mlserver_alibi_explain.explainers.black_box_runtime import AlibiExplainBlackBoxRuntime
from mlserver_alibi_explain.explainers.white_box_runtime import AlibiExplainWhiteBoxRuntime

from alibi_countergan import saving
from alibi_countergan.explainer import CounteRGAN

logger = logging.getLogger("mlserver.countergan")
"""A child of MLServer's logger, so that messages appear in the server's log with its format."""

EXPLAINER_TYPE = "countergan"
"""Value filled into ``parameters.extra.explainer_type`` when a model-settings file leaves it out."""


class ExplainRequestError(MLServerError):
    """A request the explainer cannot answer (bad input, shape, values or parameters): HTTP 400."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, status.HTTP_400_BAD_REQUEST)


class ClassifierError(MLServerError):
    """The classifier's server could not be reached or answered something other than probabilities: HTTP 502."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, status.HTTP_502_BAD_GATEWAY)


class ClassifierTimeoutError(MLServerError):
    """The classifier's server did not answer within ``classifier_timeout`` seconds: HTTP 504."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, status.HTTP_504_GATEWAY_TIMEOUT)


class RequestTooLargeError(MLServerError):
    """A request with more rows or bytes than the model's ``max_rows`` / ``max_request_bytes``: HTTP 413."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)


@dataclass(frozen=True)
class ServingOptions:
    """This package's own settings, read from ``parameters.extra`` of a ``model-settings.json``.

    Attributes
    ----------
    classifier_timeout
        Seconds a call to the classifier's server may take (connecting and answering), default 10;
        past it the request is answered with HTTP 504.
    classifier_probe_interval
        Seconds between checks of the classifier's ``.../ready`` endpoint (black-box runtime), default
        5. While the classifier does not answer them the explainer reports not-ready; 0 turns the
        checks off (the explainer's readiness then only says that it is loaded).
    max_rows
        Most instances one request may hold, default 10,000.
    max_request_bytes
        Most bytes of the request's input tensor, counted as float32 values, default 16 MiB.
    classifier_headers
        HTTP headers sent with every call to the classifier's server, e.g.
        ``{"Seldon-Model": "compas-classifier"}`` behind Seldon Core 2's ``seldon-mesh`` service.
    """

    classifier_timeout: float = 10.0
    classifier_probe_interval: float = 5.0
    max_rows: int = 10_000
    max_request_bytes: int = 16 * 2 ** 20
    classifier_headers: Tuple[Tuple[str, str], ...] = ()

    @classmethod
    def read(cls, extra: Dict[str, Any], model: str) -> "ServingOptions":
        """Read and check this package's keys of ``extra``.

        Raises
        ------
        MLServerError
            (422) For a value that is not a positive number (an integer for the limits).
        """
        values: Dict[str, Any] = {}
        for name, default in cls.__dataclass_fields__.items():
            if name not in extra:
                continue
            value = extra[name]
            if name == "classifier_headers":
                if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                          for k, v in value.items()):
                    raise MLServerError(f"Model {model}: parameters.extra.classifier_headers must map header names "
                                        f"to strings, got {value!r}.", status.HTTP_422_UNPROCESSABLE_ENTITY)
                values[name] = tuple(value.items())
                continue
            integral = isinstance(default.default, int)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and (
                value > 0 or (value == 0 and name == "classifier_probe_interval"))
            if ok and integral and value != int(value):
                ok = False
            if not ok:
                kind = "a positive integer" if integral else "a positive number of seconds"
                raise MLServerError(f"Model {model}: parameters.extra.{name} must be {kind}, got {value!r}.",
                                    status.HTTP_422_UNPROCESSABLE_ENTITY)
            values[name] = int(value) if integral else float(value)
        return cls(**values)


def _with_defaults(settings: ModelSettings) -> ModelSettings:
    """Fill in ``explainer_type`` and ``explainer_batch``; refuse ``init_parameters`` (a CounteRGAN must be fitted)."""
    if settings.parameters is None or not settings.parameters.uri:
        raise MLServerError(f"Model {settings.name}: set parameters.uri to the directory written by "
                            f"explainer.save(path).", status.HTTP_422_UNPROCESSABLE_ENTITY)
    extra = settings.parameters.extra
    if extra is None:
        extra = settings.parameters.extra = {}
    if extra.get("init_parameters") is not None:
        raise MLServerError(f"Model {settings.name}: a CounteRGAN is served fitted: remove "
                            f"parameters.extra.init_parameters and point parameters.uri at the directory written by "
                            f"explainer.save(path).", status.HTTP_422_UNPROCESSABLE_ENTITY)
    if (settings.max_batch_size or 0) > 1:
        # MLServer 1.6's adaptive batching merges the requests' parameters (the last request's
        # explain_parameters would apply to all) and splits outputs by rows, but the explanation is one
        # JSON string for the whole batch: clients would get other requests' explanations, or none.
        raise MLServerError(f"Model {settings.name}: adaptive batching (max_batch_size {settings.max_batch_size}) "
                            f"cannot split one explanation between requests and merges their explain_parameters; "
                            f"remove max_batch_size and max_batch_time (a request may hold a batch of instances "
                            f"itself).", status.HTTP_422_UNPROCESSABLE_ENTITY)
    ServingOptions.read(extra, settings.name)
    extra.setdefault("explainer_type", EXPLAINER_TYPE)
    extra.setdefault("explainer_batch", True)
    return settings


def _init_runtime(runtime: Any, base: Any, settings: ModelSettings) -> None:
    """Run ``base.__init__`` (mlserver-alibi-explain's, which refuses unknown keys in ``extra``) without our keys.

    The keys are put back afterwards: MLServer sends these same settings to its parallel workers,
    which must read them too.
    """
    settings = _with_defaults(settings)
    extra = settings.parameters.extra
    runtime.options = ServingOptions.read(extra, settings.name)
    ours = {name: extra.pop(name) for name in ServingOptions.__dataclass_fields__ if name in extra}
    try:
        base.__init__(runtime, settings, CounteRGAN)
    finally:
        extra.update(ours)


class _CounteRGANRuntime:
    """What both runtimes add to mlserver-alibi-explain's: loading, request checks, limits and errors as HTTP codes."""

    settings: ModelSettings
    alibi_explain_settings: Any
    options: ServingOptions
    _model: CounteRGAN
    _loaded: bool = False
    load_error: Optional[str] = None
    """Why :meth:`load` failed (the model then stays registered as not ready), or None."""

    # MLServer computes readiness (``/v2/models/NAME/ready``, ``/v2/health/ready``) from this
    # attribute and sets it to the result of ``load()``; the black-box runtime adds the
    # classifier's health to it.
    @property
    def ready(self) -> bool:
        return self._loaded and self._classifier_ready()

    @ready.setter
    def ready(self, value: bool) -> None:
        self._loaded = bool(value)

    def _classifier_ready(self) -> bool:
        return True

    async def load(self) -> bool:
        """Load the saved explainer; a failure leaves this model not ready and the server and other models up.

        MLServer 1.6 stops the whole server when a model's ``load`` raises during start-up; this
        returns False instead (and logs why), so MLServer keeps the model registered as not ready.
        """
        try:
            return bool(await super().load())  # type: ignore[misc]
        except Exception as err:  # every failure: a damaged save, a missing classifier file, a bad setting
            self.load_error = f"{type(err).__name__}: {err}"
            logger.error("Model %s could not be loaded and stays not ready: %s", self.settings.name, self.load_error)
            return False

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Explain the request's instances (V2 inference request in, the explanation as JSON out).

        Raises
        ------
        ExplainRequestError
            For a request without exactly one input tensor, data that do not fit its shape, and
            everything :meth:`CounteRGAN.explain` rejects.
        RequestTooLargeError
            For more rows or bytes than ``max_rows`` / ``max_request_bytes``.
        """
        inputs = payload.inputs
        if len(inputs) != 1:
            raise ExplainRequestError(
                f"The request has {len(inputs)} input tensors; send exactly one, holding the instances to explain "
                f"with shape [n, {', '.join(map(str, self._model.feature_shape))}].")
        self._check_size(list(inputs[0].shape))
        try:
            return await super().predict(payload)  # type: ignore[misc]
        except (ValueError, TypeError) as err:  # decoding: data that do not fill the declared shape, bad dtypes
            raise ExplainRequestError(f"The input tensor {inputs[0].name!r} could not be read: {err}") from None

    def _check_size(self, shape: Any) -> None:
        """Refuse a request larger than the limits, from its declared shape (before the data are decoded)."""
        if not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ExplainRequestError(f"The input tensor's shape {shape} is not a list of non-negative integers.")
        rows, values = shape[0], math.prod(shape)
        if rows > self.options.max_rows:
            raise RequestTooLargeError(
                f"The request holds {rows} instances; this model accepts at most {self.options.max_rows} per request "
                f"(parameters.extra.max_rows). Split it into smaller requests.")
        if 4 * values > self.options.max_request_bytes:
            raise RequestTooLargeError(
                f"The request's input tensor holds {values} values ({4 * values} bytes as float32); this model "
                f"accepts at most {self.options.max_request_bytes} bytes per request "
                f"(parameters.extra.max_request_bytes). Split it into smaller requests.")

    def _explain_impl(self, input_data: Any, explain_parameters: Any) -> Explanation:
        parameters = self._explain_parameters(explain_parameters)
        x = np.asarray(input_data)
        if not self.alibi_explain_settings.explainer_batch and (x.ndim == 0 or len(x) != 1):
            raise ExplainRequestError(f"This explainer is configured with explainer_batch=false: send one instance "
                                      f"per request, got an input of shape {list(x.shape)}.")
        try:
            return self._model.explain(x, **parameters)
        except (ValueError, TypeError) as err:
            raise ExplainRequestError(str(err)) from None

    def _explain_parameters(self, given: Any) -> Dict[str, Any]:
        if given is None:
            return {}
        if not isinstance(given, dict):
            raise ExplainRequestError(f"parameters.explain_parameters must be an object mapping names to values, "
                                      f"got {type(given).__name__}.")
        accepted = [name for name in inspect.signature(self._model.explain).parameters if name != "X"]
        unknown = sorted(set(given) - set(accepted))
        if unknown:
            raise ExplainRequestError(f"Unknown explain parameter(s) {unknown}; this explainer accepts {accepted}.")
        return dict(given)

    def _probes_predictor_at_load(self) -> bool:
        return True

    async def _load_explainer(self, path: str, predictor: Any) -> CounteRGAN:
        """Load with :func:`alibi_countergan.saving.load`: JSON and weights only, no pickle."""
        loop = asyncio.get_running_loop()
        executor = self._executor  # type: ignore[attr-defined]
        return await loop.run_in_executor(executor, functools.partial(
            saving.load, path, predictor, probe=self._probes_predictor_at_load()))

    def get_alibi_method(self) -> str:
        """Value of the response's ``x-seldon-alibi-method`` header."""
        return "CounteRGAN"


class CounteRGANBlackBoxRuntime(_CounteRGANRuntime, AlibiExplainBlackBoxRuntime):
    """CounteRGAN behind MLServer, calling the classifier's V2 endpoint ``infer_uri`` for probabilities.

    ``model-settings.json``::

        {"name": "compas-explainer",
         "implementation": "alibi_countergan.serving.CounteRGANBlackBoxRuntime",
         "parameters": {"uri": "./explainer",
                        "extra": {"infer_uri": "http://127.0.0.1:8080/v2/models/compas-classifier/infer",
                                  "infer_output": "predict_proba",
                                  "classifier_timeout": 10}}}

    The classifier is first called when the first request arrives (loading does not call it), so
    the two servers may start in any order. Every call to it (metadata, inference, readiness
    checks) has a timeout of ``classifier_timeout`` seconds: past it the request is answered
    with 504, and a refused connection or an HTTP error from the classifier with 502, each naming
    the classifier's address. Every ``classifier_probe_interval`` seconds the runtime asks the
    classifier's ``.../ready`` endpoint; while that fails this model reports not-ready.
    """

    infer_uri: str
    infer_metadata: Optional[MetadataModelResponse]
    ssl_verify_path: str
    _classifier_down: Optional[str] = None
    _probe_task: "Optional[asyncio.Task[None]]" = None

    def __init__(self, settings: ModelSettings) -> None:
        _init_runtime(self, AlibiExplainBlackBoxRuntime, settings)

    def _probes_predictor_at_load(self) -> bool:
        return False  # the classifier's server may start after this one

    def _classifier_ready(self) -> bool:
        return self._classifier_down is None

    @property
    def ready_uri(self) -> Optional[str]:
        """The classifier's V2 readiness endpoint, from ``infer_uri`` (None when it does not end in ``/infer``)."""
        uri = self.infer_uri.rstrip("/")
        return uri[: -len("/infer")] + "/ready" if uri.endswith("/infer") else None

    async def load(self) -> bool:
        loaded = await super().load()
        if loaded and self.options.classifier_probe_interval > 0 and self.ready_uri is not None:
            self._probe_task = asyncio.get_running_loop().create_task(self._probe_classifier())
        return loaded

    async def unload(self) -> bool:
        if self._probe_task is not None:
            self._probe_task.cancel()
            self._probe_task = None
        return bool(await super().unload())

    async def _probe_classifier(self) -> None:
        """Ask the classifier's readiness endpoint every ``classifier_probe_interval`` seconds, in the executor."""
        loop = asyncio.get_running_loop()
        while True:
            down = await loop.run_in_executor(self._executor, self._check_classifier)
            if down != self._classifier_down:
                if down is None:
                    logger.info("Model %s: the classifier at %s is ready again.", self.name, self.infer_uri)
                else:
                    logger.warning("Model %s is not ready: %s", self.name, down)
            self._classifier_down = down
            await asyncio.sleep(self.options.classifier_probe_interval)

    def _check_classifier(self) -> Optional[str]:
        """None when the classifier's readiness endpoint answers 200 in time, otherwise why not."""
        uri = self.ready_uri
        if uri is None:
            return None
        try:
            response = requests.get(uri, timeout=self.options.classifier_timeout, verify=self._verify(),
                                    headers=dict(self.options.classifier_headers))
        except requests.Timeout:
            return f"the classifier at {uri} did not answer within {self.options.classifier_timeout:g} s"
        except requests.RequestException as err:
            return f"the classifier at {uri} could not be reached ({type(err).__name__})"
        if response.status_code != 200:
            return f"the classifier at {uri} answered HTTP {response.status_code} (not ready)"
        return None

    def _verify(self) -> "str | bool":
        return self.ssl_verify_path or True

    def _call_classifier(self, method: str, uri: str, headers: Optional[Dict[str, str]] = None, **kwargs: Any) -> Any:
        """One HTTP call to the classifier's server, with the timeout; failures as 502 / 504 naming it."""
        timeout = self.options.classifier_timeout
        headers = {**dict(self.options.classifier_headers), **(headers or {})}
        where = self.infer_uri
        call = "" if uri == self.infer_uri else f" (asked for its metadata at {uri})"
        try:
            response = requests.request(method, uri, timeout=timeout, verify=self._verify(), headers=headers, **kwargs)
        except requests.Timeout:
            raise ClassifierTimeoutError(
                f"The classifier at {where} did not answer within {timeout:g} s{call} "
                f"(parameters.extra.classifier_timeout)."
            ) from None
        except requests.RequestException as err:
            raise ClassifierError(f"The classifier at {where} could not be reached{call}: {err}") from None
        if response.status_code != 200:
            detail = response.text[:300].strip()
            raise ClassifierError(f"The classifier at {where} answered HTTP {response.status_code} "
                                  f"{response.reason}{call}{': ' + detail if detail else ''}")
        return response

    def _infer_impl(self, input_data: Any) -> np.ndarray:
        """The classifier's probabilities for ``input_data``, through its V2 endpoint (mlserver-alibi-explain's
        protocol, with a timeout on every call)."""
        if self.infer_metadata is None and "/v2/pipelines/" not in self.infer_uri:
            meta = self._call_classifier("GET", construct_metadata_url(self.infer_uri))
            try:
                self.infer_metadata = MetadataModelResponse.model_validate_json(meta.text)
            except ValueError as err:
                raise ClassifierError(f"The classifier at {self.infer_uri} answered its metadata request with "
                                      f"something other than V2 metadata: {err}") from None
        request = to_v2_inference_request(input_data=input_data, metadata=self.infer_metadata,
                                          output=self.alibi_explain_settings.infer_output)
        response = self._call_classifier("POST", self.infer_uri, json=request.model_dump(),
                                         headers={SELDON_SKIP_LOGGING_HEADER: "true"})
        try:
            proba = NumpyCodec.decode_output(InferenceResponse.model_validate_json(response.text).outputs[0])
        except (ValueError, IndexError) as err:
            raise ClassifierError(f"The classifier at {self.infer_uri} answered with something other than a V2 "
                                  f"inference response: {err}") from None
        if np.ndim(proba) != 2 or np.shape(proba)[1] < 2:
            raise ClassifierError(
                f"The classifier at {self.infer_uri} returned an output of shape {list(np.shape(proba))}, not class "
                f"probabilities of shape [n, n_classes]: set parameters.extra.infer_output to its probability output "
                f"(predict_proba for MLServer's scikit-learn runtime).")
        return proba


class CounteRGANWhiteBoxRuntime(_CounteRGANRuntime, AlibiExplainWhiteBoxRuntime):
    """CounteRGAN behind MLServer with the classifier loaded in-process from the local path ``infer_uri``.

    ``model-settings.json``::

        {"name": "compas-explainer-whitebox",
         "implementation": "alibi_countergan.serving.CounteRGANWhiteBoxRuntime",
         "parameters": {"uri": "./explainer-whitebox", "extra": {"infer_uri": "./classifier.pt2"}}}
    """

    def __init__(self, settings: ModelSettings) -> None:
        _init_runtime(self, AlibiExplainWhiteBoxRuntime, settings)

    async def _get_inference_model(self) -> Any:
        path = to_absolute_path(self.settings, self.alibi_explain_settings.infer_uri)
        return load_classifier(path)


# ---------------------------------------------------------------------------------------------
# local classifiers
# ---------------------------------------------------------------------------------------------


def load_classifier(path: "str | os.PathLike[str]") -> Any:
    """Load a classifier from a local file or directory, choosing the loader by its suffix.

    Parameters
    ----------
    path
        ``.pt2``: a ``torch.export`` program (exported in eval mode), returned as a
        ``torch.nn.Module``. ``.pt``, ``.pth``: TorchScript (``torch.jit.load``), in eval mode.
        ``.keras``, ``.h5`` or a SavedModel directory: ``tf.keras.models.load_model``.
        ``.joblib``, ``.pkl``: a scikit-learn style model (``joblib.load``; a pickle, so only
        files you trust), returned as its ``predict_proba``.

    Returns
    -------
    predictor
        A framework model (usable for white-box explainers) or a function returning probabilities.

    Raises
    ------
    FileNotFoundError
        When nothing is at ``path``.
    ValueError
        For a suffix none of the loaders reads, or a scikit-learn model without ``predict_proba``.
    """
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"No classifier at {file}.")
    suffix = file.suffix.lower()
    if suffix == ".pt2":
        import torch

        return _exported_module(torch.export.load(str(file)).module())
    if suffix in (".pt", ".pth"):
        import torch

        return torch.jit.load(str(file), map_location="cpu").eval()
    if suffix in (".keras", ".h5") or (file.is_dir() and (file / "saved_model.pb").is_file()):
        import tensorflow as tf

        return tf.keras.models.load_model(str(file), compile=False)
    if suffix in (".joblib", ".pkl"):
        import joblib

        model = joblib.load(file)
        predict_proba: Optional[Callable[[np.ndarray], np.ndarray]] = getattr(model, "predict_proba", None)
        if predict_proba is None:
            raise ValueError(f"The model in {file} ({type(model).__name__}) has no predict_proba: CounteRGAN needs "
                             f"class probabilities.")
        return predict_proba
    raise ValueError(f"Cannot tell how to load the classifier {file}: use .pt2 (torch.export), .pt/.pth "
                     f"(TorchScript), .keras/.h5/a SavedModel directory (Keras) or .joblib/.pkl (scikit-learn).")


def _exported_module(program: Any) -> Any:
    """A ``torch.export`` program as an ``nn.Module`` whose train/eval switches leave the program alone.

    Exported programs refuse ``.eval()`` (their mode was fixed when they were exported), which
    the explainer calls around every prediction.
    """
    from torch import nn

    class ExportedClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.program = program

        def train(self, mode: bool = True) -> "ExportedClassifier":
            self.training = mode
            return self

        def forward(self, x: Any) -> Any:
            return self.program(x)

    return ExportedClassifier().eval()
