"""Saving a fitted CounteRGAN and loading it again, through alibi's own saving API.

``explainer.save(path)``, ``CounteRGAN.load(path, predictor)`` and
``alibi.saving.load_explainer(path, predictor)`` all work. A saved explainer is a directory:

``meta.dill``
    alibi's metadata file (a dill pickle of ``explainer.meta``), which alibi reads first to pick
    the loader. It is written so that unpickling it imports :mod:`alibi_countergan`, which
    registers this module's loader with :mod:`alibi.saving`; that is what lets
    ``alibi.saving.load_explainer`` work in a process that only imported alibi.
``countergan.json``
    Everything else that defines the explainer, as JSON (written by
    :func:`alibi_countergan.jsonvalue.to_json_value`): the format version, the constructor's
    parameters (:meth:`CounteRGANConfig.to_json <alibi_countergan.params.CounteRGANConfig.to_json>`),
    the feature statistics and constraints (:meth:`FeatureSpace.to_config`), the number of classes,
    the metadata and the training history. :meth:`CounteRGAN.from_config
    <alibi_countergan.explainer.CounteRGAN.from_config>` rebuilds the explainer from it.
``generator.pt``, ``discriminator.pt`` (PyTorch backend)
    The networks' weights as torch ``state_dict`` files of plain tensors, read back with
    ``torch.load(..., weights_only=True)``. TensorFlow checkpoint files for the TensorFlow
    backend; an object without a weight format of its own (see
    :class:`~alibi_countergan.backends.base.WeightFiles`) is stored as ``weights.npz`` (numpy's
    format, read without pickle).

Trust boundary: ``meta.dill`` is a pickle, and unpickling runs code chosen by whoever wrote the
file. Load artefacts with ``alibi.saving.load_explainer`` (or ``CounteRGAN.load``) only from
sources you trust. :func:`load` in this module never reads ``meta.dill``: it reads only JSON and
weight files with loaders that cannot run code, so it is the safer choice for artefacts of
uncertain origin (the MLServer runtimes use it).
"""

import copy
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Union

import numpy as np

from alibi_countergan.backends.base import NUMPY_WEIGHTS, WeightFileError, WeightFiles, brief_error, weight_files_of
from alibi_countergan.constraints import FeatureSpace
from alibi_countergan.jsonvalue import from_json_value as from_json_value  # re-exported: the save file's encoding
from alibi_countergan.jsonvalue import to_json_value
from alibi_countergan.upstream import register_saving
from alibi_countergan.version import __version__

if TYPE_CHECKING:
    from alibi_countergan.explainer import CounteRGAN

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

FORMAT = "alibi-countergan"
"""Value of ``countergan.json``'s ``format`` field."""

FORMAT_VERSION = 1
"""Version of the on-disk layout written by this release. Bumped on every incompatible change."""

READABLE_FORMAT_VERSIONS = (1,)
"""Layout versions this release can load."""

CONFIG_FILE = "countergan.json"


class IncompatibleSaveError(ValueError):
    """A saved explainer that this version of alibi-countergan cannot load (or not a CounteRGAN save)."""


# ---------------------------------------------------------------------------------------------
# save
# ---------------------------------------------------------------------------------------------




def save(explainer: "CounteRGAN", path: PathLike) -> None:
    """Write a fitted explainer's configuration and weights into directory ``path``.

    This is the explainer-specific part of ``alibi.saving.save_explainer`` (which writes
    ``meta.dill`` and then calls it); use ``explainer.save(path)``.

    Parameters
    ----------
    explainer
        A fitted :class:`~alibi_countergan.explainer.CounteRGAN`.
    path
        The directory (created if missing; files of an earlier save are replaced).

    Raises
    ------
    RuntimeError
        When the explainer is not fitted.
    TypeError
        When a parameter cannot be stored (see :meth:`~alibi_countergan.params.CounteRGANConfig.to_json`).
    """
    directory = Path(path)
    if not hasattr(explainer, "backend_"):
        (directory / "meta.dill").unlink(missing_ok=True)  # alibi wrote it before calling us
        raise RuntimeError("Only a fitted CounteRGAN can be saved: call fit(X) first.")
    directory.mkdir(parents=True, exist_ok=True)
    weights = explainer.backend_.get_weights()
    store = weight_files_of(explainer.backend_)
    files, weight_format = store.write_weights(weights, directory), store.weight_format
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "class": type(explainer).__name__,
        "backend": explainer.backend_.name,
        "params": explainer.config.to_json(),
        "white_box": explainer.white_box,
        "custom_networks": explainer.config.custom_networks(),
        "n_classes": explainer.n_classes_,
        "space": to_json_value(explainer.space_.to_config(), "space"),
        "table": None if explainer.table_ is None else to_json_value(explainer.table_.to_config(), "table"),
        "weights": {"format": weight_format, "files": files},
        "meta": to_json_value(explainer.meta, "meta"),
        "history": to_json_value(getattr(explainer, "history_", []), "history"),
    }
    text = json.dumps(config, allow_nan=False)
    (directory / CONFIG_FILE).write_text(text, encoding="utf-8")
    _write_meta(explainer.meta, directory)


class _Meta:
    """``explainer.meta`` in ``meta.dill``: unpickles to the plain dict, importing alibi_countergan on the way."""

    def __init__(self, meta: Dict[str, Any]) -> None:
        self.meta = meta

    def __reduce__(self) -> Any:
        return (_meta_from_file, (self.meta,))


def _meta_from_file(meta: Dict[str, Any]) -> Dict[str, Any]:
    """Called by unpickling ``meta.dill``; importing this module registered the loader with alibi."""
    return meta


def _write_meta(meta: Dict[str, Any], directory: Path) -> None:
    import dill

    with open(directory / "meta.dill", "wb") as f:
        dill.dump(_Meta(copy.deepcopy(meta)), f)


# ---------------------------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------------------------


def read_config(path: PathLike) -> Dict[str, Any]:
    """Read and check ``countergan.json`` of a saved explainer.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a directory holding ``countergan.json``.
    IncompatibleSaveError
        When the file is not a CounteRGAN save, or was written in a layout this version cannot read.
    """
    directory = Path(path)
    file = directory / CONFIG_FILE
    if not file.is_file():
        what = "no directory" if not directory.is_dir() else f"no {CONFIG_FILE} in the directory"
        raise FileNotFoundError(f"Cannot load a CounteRGAN from {directory}: {what}. Pass the directory written by "
                                f"explainer.save(path).")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise IncompatibleSaveError(f"{file} is not valid JSON ({err}): the save is damaged.") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise IncompatibleSaveError(f"{file} is not a CounteRGAN save (its format field is "
                                    f"{config.get('format') if isinstance(config, dict) else None!r}).")
    version = config.get("format_version")
    saved_by = config.get("package_version", "an unknown version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise IncompatibleSaveError(f"{file} has no valid format_version: the save is damaged.")
    if version not in READABLE_FORMAT_VERSIONS:
        if version > max(READABLE_FORMAT_VERSIONS):
            advice = "Upgrade alibi-countergan to load it."
        else:
            advice = "Fit the explainer again and save it with this version."
        raise IncompatibleSaveError(
            f"This CounteRGAN was saved by alibi-countergan {saved_by} in save format {version}; alibi-countergan "
            f"{__version__} reads save format {', '.join(map(str, READABLE_FORMAT_VERSIONS))} only. {advice}")
    required = ("params", "white_box", "n_classes", "space", "weights", "meta", "backend")
    missing = [k for k in required if k not in config]
    if missing:
        raise IncompatibleSaveError(f"{file} lacks the entries {missing}: the save is damaged.")
    return config


def load(path: PathLike, predictor: Any, *, generator: Any = None, discriminator: Any = None,
         probe: bool = True) -> "CounteRGAN":
    """Load an explainer saved by ``explainer.save(path)``, without reading ``meta.dill``.

    ``alibi.saving.load_explainer(path, predictor)`` and ``CounteRGAN.load(path, predictor)`` end
    here too. This function reads only JSON and weight files (no pickle).

    Parameters
    ----------
    path
        The directory written by ``explainer.save``.
    predictor
        The classifier, as for the constructor. An explainer trained white-box needs a model of its
        backend's framework (gradients); one trained black-box takes any callable returning
        class probabilities (for example a function calling a model server).
    generator, discriminator
        Only for an explainer trained with custom networks: new (untrained) instances of the same
        architectures, which receive the saved weights.
    probe
        Call the predictor once on one instance (the fit data's centre) and check that it returns
        probabilities for the saved number of classes, so that a wrong predictor fails here rather
        than at the first ``explain``. False skips the call (the MLServer black-box runtime does,
        because its classifier's server may start later).

    Returns
    -------
    explainer
        The fitted explainer; it returns the same counterfactuals as the saved one and has the
        same ``meta``. Callbacks are not saved: the loaded explainer has none.

    Raises
    ------
    FileNotFoundError
        When the directory or a file of the save is missing.
    IncompatibleSaveError
        For a save of another format version, or one that is damaged.
    ValueError
        When the predictor or the networks do not fit the saved explainer (with ``probe``: a
        predictor whose output is not probabilities of the saved number of classes).
    """
    from alibi_countergan.explainer import CounteRGAN

    directory = Path(path)
    config = read_config(directory)
    explainer = CounteRGAN.from_config(config, predictor, generator=generator, discriminator=discriminator)
    _read_weights(explainer, directory, config["weights"])
    if probe:
        _probe_predictor(explainer, explainer.space_, explainer.n_classes_)
    return explainer


def _probe_predictor(explainer: "CounteRGAN", space: FeatureSpace, n_classes: int) -> None:
    """Call the predictor on one instance and check its output against the saved explainer."""
    x = np.asarray(space.center, dtype=np.float32).reshape((1,) + explainer.encoded_config_.feature_shape)
    try:
        explainer._predict(x, n_classes, explainer.table_, explainer.backend_)
    except ValueError as err:
        raise ValueError(f"The predictor does not fit this saved CounteRGAN (checked on one instance at load time): "
                         f"{err}") from None


_DAMAGED_ADVICE = ("Copy the saved directory again from where explainer.save wrote it, or fit and save the explainer "
                   "again; never load a weight file you cannot trust with fewer safeguards.")


def read_weight_files(directory: PathLike, spec: Mapping[str, Any], backend: Any) -> Dict[str, np.ndarray]:
    """Read a save's weight files: the one place where weight files are opened.

    Every failure to read (a truncated, empty or foreign file, random bytes, a format the backend
    does not know) becomes an :class:`IncompatibleSaveError` that names the file and what to do;
    PyTorch files are read with ``torch.load(..., weights_only=True)`` and numpy archives with
    ``allow_pickle=False``, so no code in a file runs.

    Parameters
    ----------
    directory
        The saved explainer's directory.
    spec
        ``countergan.json``'s ``weights`` entry: ``{"format": ..., "files": [...]}``.
    backend
        The built backend that will receive the weights (its weight-file hook reads its own format).

    Returns
    -------
    weights
        A ``set_weights`` dict keyed ``'generator/...'`` and ``'discriminator/...'``.

    Raises
    ------
    FileNotFoundError
        When a listed weight file is missing.
    IncompatibleSaveError
        When a file cannot be read, or the format is not the installed backend's.
    """
    directory = Path(directory)
    weight_format, files = spec.get("format"), spec.get("files", [])
    if not isinstance(files, list) or not files:
        raise IncompatibleSaveError(f"{directory / CONFIG_FILE} lists no weight files: the save is damaged. "
                                    f"{_DAMAGED_ADVICE}")
    for file in files:
        if not isinstance(file, str) or Path(file).name != file:
            raise IncompatibleSaveError(f"The save lists the weight file {file!r}, which is not a plain file name.")
        if not (directory / file).is_file():
            raise FileNotFoundError(f"The saved CounteRGAN in {directory} lacks its weight file {file}.")
        if (directory / file).stat().st_size == 0:
            raise IncompatibleSaveError(f"The weight file {directory / file} is empty (0 bytes). {_DAMAGED_ADVICE}")
    stores: List[WeightFiles] = [weight_files_of(backend), NUMPY_WEIGHTS]
    try:
        for store in stores:
            if store.weight_format == weight_format:
                return store.read_weights(directory, files)
    except WeightFileError as err:
        raise IncompatibleSaveError(f"The weight file {err.file} cannot be read: {err.reason}. "
                                    f"{_DAMAGED_ADVICE}") from None
    except Exception as err:  # anything else a framework raises while reading: name every file
        raise IncompatibleSaveError(f"The weight files {files} in {directory} cannot be read ({brief_error(err)}). "
                                    f"{_DAMAGED_ADVICE}") from None
    raise IncompatibleSaveError(f"The weights in {directory} are stored as {weight_format!r}, which the installed "
                                f"{backend.name} backend cannot read: load the explainer with the backend that saved "
                                f"it.")


def _read_weights(explainer: "CounteRGAN", directory: Path, spec: Mapping[str, Any]) -> None:
    backend = explainer.backend_
    weights = read_weight_files(directory, spec, backend)
    expected = backend.get_weights()
    missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ValueError(f"The saved weights in {directory} do not fit the networks: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}. Pass networks of the architectures the explainer was trained "
                         f"with.")
    for key, value in weights.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(f"The saved weight {key} has shape {tuple(value.shape)}; the network's has "
                             f"{tuple(expected[key].shape)}.")
    backend.set_weights(weights)


# ---------------------------------------------------------------------------------------------
# alibi.saving dispatch
# ---------------------------------------------------------------------------------------------


def _save_countergan(explainer: "CounteRGAN", path: PathLike) -> None:
    save(explainer, path)


def _load_countergan(path: PathLike, predictor: Any, meta: Dict[str, Any]) -> "CounteRGAN":
    explainer = load(path, predictor)
    if meta.get("name") != explainer.meta.get("name"):
        raise IncompatibleSaveError(f"meta.dill in {path} names {meta.get('name')!r}, countergan.json "
                                    f"{explainer.meta.get('name')!r}: the save is damaged.")
    return explainer


def register_with_alibi() -> None:
    """Make ``alibi.saving.save_explainer`` / ``load_explainer`` use this module for CounteRGAN.

    alibi finds an explainer's saving functions as ``_save_<name>`` / ``_load_<name>`` attributes
    of :mod:`alibi.saving` (a private detail, see :func:`alibi_countergan.upstream.register_saving`);
    this adds the two for ``CounteRGAN`` (it replaces nothing of alibi's). Importing
    :mod:`alibi_countergan` calls it.
    """
    register_saving("CounteRGAN", _save_countergan, _load_countergan)
