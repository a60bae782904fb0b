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

import inspect
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np
import requests
from alibi.api.interfaces import Explanation
from fastapi import status
from mlserver.errors import MLServerError
from mlserver.settings import ModelSettings
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import to_absolute_path
from mlserver_alibi_explain.explainers.black_box_runtime import AlibiExplainBlackBoxRuntime
from mlserver_alibi_explain.explainers.white_box_runtime import AlibiExplainWhiteBoxRuntime

from alibi_countergan import saving
from alibi_countergan.explainer import CounteRGAN

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
    extra.setdefault("explainer_type", EXPLAINER_TYPE)
    extra.setdefault("explainer_batch", True)
    return settings


class _CounteRGANRuntime:
    """What both runtimes add to mlserver-alibi-explain's: loading, request checks and errors as HTTP 400."""

    settings: ModelSettings
    alibi_explain_settings: Any
    _model: CounteRGAN

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Explain the request's instances (V2 inference request in, the explanation as JSON out).

        Raises
        ------
        ExplainRequestError
            For a request without exactly one input tensor, data that do not fit its shape, and
            everything :meth:`CounteRGAN.explain` rejects.
        """
        inputs = payload.inputs
        if len(inputs) != 1:
            raise ExplainRequestError(
                f"The request has {len(inputs)} input tensors; send exactly one, holding the instances to explain "
                f"with shape [n, {', '.join(map(str, self._model.feature_shape))}].")
        try:
            return await super().predict(payload)  # type: ignore[misc]
        except (ValueError, TypeError) as err:  # decoding: data that do not fill the declared shape, bad dtypes
            raise ExplainRequestError(f"The input tensor {inputs[0].name!r} could not be read: {err}") from None

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

    async def _load_explainer(self, path: str, predictor: Any) -> CounteRGAN:
        """Load with :func:`alibi_countergan.saving.load`: JSON and weights only, no pickle."""
        import asyncio
        import functools

        loop = asyncio.get_running_loop()
        executor = self._executor  # type: ignore[attr-defined]
        return await loop.run_in_executor(executor, functools.partial(saving.load, path, predictor))

    def get_alibi_method(self) -> str:
        """Value of the response's ``x-seldon-alibi-method`` header."""
        return "CounteRGAN"


class CounteRGANBlackBoxRuntime(_CounteRGANRuntime, AlibiExplainBlackBoxRuntime):
    """CounteRGAN behind MLServer, calling the classifier's V2 endpoint ``infer_uri`` for probabilities.

    ``model-settings.json``::

        {"name": "compas-explainer",
         "implementation": "alibi_countergan.serving.CounteRGANBlackBoxRuntime",
         "parameters": {"uri": "./explainer",
                        "extra": {"infer_uri": "http://localhost:8080/v2/models/compas-classifier/infer",
                                  "infer_output": "predict_proba"}}}

    The classifier is first called when the first request arrives, so the two servers may start
    in any order.
    """

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(_with_defaults(settings), CounteRGAN)

    def _infer_impl(self, input_data: Any) -> np.ndarray:
        try:
            proba = super()._infer_impl(input_data)
        except requests.RequestException as err:
            raise ClassifierError(f"The classifier at {self.infer_uri} could not be reached: {err}") from None
        if np.ndim(proba) != 2:
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
        super().__init__(_with_defaults(settings), CounteRGAN)

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
