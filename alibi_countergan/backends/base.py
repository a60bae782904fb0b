"""The surface every backend implements, with the same names in each framework.

A backend builds the networks (the defaults, or the user's), runs one discriminator update
and one generator update, runs the generator forward for ``explain``, calls a white-box
predictor, and moves weights in and out. Everything else (validation, statistics, sampling of
batches and targets, the black-box weights, the loss structure, constraints, the training
schedule, progress, callbacks and the :class:`alibi.api.interfaces.Explanation`) is in the
framework-free core.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np

from alibi_countergan.constraints import FeatureSpace
from alibi_countergan.layout import ImageLayout
from alibi_countergan.value import Batch, LossWeights

__all__ = ["Backend", "Batch", "NetworkSpec", "TrainingSpec", "WeightFiles", "NumpyWeightFiles", "NUMPY_WEIGHTS",
           "WeightFileError", "brief_error", "weight_files_of"]


class WeightFileError(Exception):
    """A backend could not read one of a save's weight files; :mod:`alibi_countergan.saving` reports it.

    Backends raise it from their weight-file hook so that the error names the file at fault;
    ``alibi_countergan.saving.read_weight_files`` turns it into an ``IncompatibleSaveError``.

    Parameters
    ----------
    file
        The file that could not be read.
    reason
        What went wrong, in a few words (never advice to load the file with fewer safeguards).
    """

    def __init__(self, file: "str | Path", reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = Path(file)
        self.reason = reason


def brief_error(err: BaseException, limit: int = 200) -> str:
    """``err`` in a few words for a message: its type and the first line of its text.

    The text is dropped when it mentions ``weights_only``: torch's own message then advises
    loading with ``weights_only=False``, which runs code from the file and must not be followed.
    """
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if "weights_only" in first or not first:
        return type(err).__name__
    return f"{type(err).__name__}: {first[:limit]}"


@dataclass(frozen=True)
class NetworkSpec:
    """What a backend needs to know to build its networks.

    Attributes
    ----------
    feature_shape
        Shape of one instance, as the predictor sees it.
    n_classes
        Number of classes of the predictor (size of the generator's target input).
    discriminator_outputs
        1 (white-box: one realism score) or ``n_classes`` (black-box: one score per target).
    image
        For images, their layout (default networks are convolutional); None for feature vectors
        (default networks are MLPs).
    plain_gan
        True only for the paper's plain "GAN" baseline (the explainer's ``residual=False`` ablation):
        the generator network (the default or the user's) outputs the whole counterfactual in
        standardised units, and the backend wraps it into a network that subtracts its input
        ``x_std``, so that the rest of the code sees a residual like any other generator's. The
        wrapper adds no weights and keeps the wrapped network's weight names and weight files.
    """

    feature_shape: Tuple[int, ...]
    n_classes: int
    discriminator_outputs: int
    image: Optional[ImageLayout]
    plain_gan: bool = False

    @property
    def n_features(self) -> int:
        """Number of flattened features."""
        return int(np.prod(self.feature_shape))


@dataclass(frozen=True)
class TrainingSpec:
    """How the networks are trained.

    Attributes
    ----------
    space
        Feature statistics and constraints.
    weights
        Weights of the generator's loss terms.
    white_box
        Whether the generator's loss includes the predictor's log-probability (needs gradients).
    learning_rate_generator, learning_rate_discriminator
        Adam learning rates.
    beta_1
        Adam's first-moment decay, shared by both optimisers.
    """

    space: FeatureSpace
    weights: LossWeights
    white_box: bool
    learning_rate_generator: float
    learning_rate_discriminator: float
    beta_1: float


@runtime_checkable
class WeightFiles(Protocol):
    """Weights in and out of files, in one format (part of every :class:`Backend`).

    Weights always move as ``get_weights()`` / ``set_weights()`` dicts of numpy arrays keyed
    ``'generator/...'`` and ``'discriminator/...'``; an implementation only turns such a dict into
    files and back. Each backend writes its framework's own format; :data:`NUMPY_WEIGHTS` writes
    numpy's, for an object that has no format of its own, and reads saves written that way.
    """

    weight_format: str
    """Name recorded in ``countergan.json`` (e.g. ``'torch.state_dict'``); loading checks it."""

    def write_weights(self, weights: Mapping[str, np.ndarray], directory: Path) -> List[str]:
        """Write ``weights`` (as from ``get_weights``) into ``directory``; return the file names written."""

    def read_weights(self, directory: Path, files: Sequence[str]) -> Dict[str, np.ndarray]:
        """Read the files written by :meth:`write_weights` back into a ``set_weights`` dict.

        Raises :class:`WeightFileError` naming the file when one cannot be read.
        """


class NumpyWeightFiles:
    """:class:`WeightFiles` in numpy's ``.npz`` format (one archive, read without pickle)."""

    weight_format = "numpy.npz"
    file_name = "weights.npz"

    def write_weights(self, weights: Mapping[str, np.ndarray], directory: Path) -> List[str]:
        """Write every weight into ``weights.npz`` with ``np.savez``."""
        np.savez(Path(directory) / self.file_name, **weights)
        return [self.file_name]

    def read_weights(self, directory: Path, files: Sequence[str]) -> Dict[str, np.ndarray]:
        """Read the first listed archive with ``allow_pickle=False`` (no code in the file runs)."""
        file = Path(directory) / files[0]
        try:
            with np.load(file, allow_pickle=False) as archive:
                return {k: np.asarray(archive[k]) for k in archive.files}
        except Exception as err:
            raise WeightFileError(file, f"numpy could not read it ({brief_error(err)})") from None


NUMPY_WEIGHTS = NumpyWeightFiles()
"""The ``.npz`` weight files."""


def weight_files_of(backend: Any) -> WeightFiles:
    """The weight-file format a backend writes: its own, or numpy's when the object has none."""
    return backend if isinstance(backend, WeightFiles) else NUMPY_WEIGHTS


class Backend(WeightFiles, Protocol):
    """A framework's implementation of the training and inference primitives.

    :func:`alibi_countergan.backends.load_backend` returns one; both
    :class:`~alibi_countergan.backends.pytorch.TorchBackend` and
    :class:`~alibi_countergan.backends.tensorflow.TFBackend` are checked against this protocol by
    mypy. Batches reach a backend as ``Batch[np.ndarray]`` and it maps them to its tensors with
    one :meth:`Batch.map <alibi_countergan.value.Batch.map>` call.
    """

    name: str
    """``'pytorch'`` or ``'tensorflow'``."""

    @property
    def generator(self) -> Any:
        """The generator network of the backend's framework (None before :meth:`build`)."""

    @property
    def discriminator(self) -> Any:
        """The discriminator network of the backend's framework (None before :meth:`build`)."""

    @property
    def predictor(self) -> Any:
        """The white-box predictor whose gradients train the generator; None in black-box mode."""

    def build(self, network: NetworkSpec, training: TrainingSpec, predictor: Any, seed: int,
              generator: Any = None, discriminator: Any = None) -> None:
        """Create (or adopt) the networks and the optimisers.

        ``predictor`` is the framework model in white-box mode (its gradients drive the
        generator) and None in black-box mode. ``generator`` and ``discriminator`` replace the
        default networks; they take flat inputs (see :mod:`alibi_countergan.value`). With
        ``network.plain_gan`` the generator (the default or the given one) is wrapped so that it
        outputs ``G(x_std, t, mask) - x_std`` (see :class:`NetworkSpec`).
        """

    def set_predictor(self, predictor: Any) -> None:
        """Replace the white-box predictor of a built backend (the TensorFlow backend recompiles its step)."""

    def discriminator_step(self, batch: "Batch[np.ndarray]") -> Dict[str, float]:
        """One update of the discriminator; returns the loss parts as floats."""

    def generator_step(self, batch: "Batch[np.ndarray]") -> Dict[str, float]:
        """One update of the generator; returns the loss parts as floats."""

    def generate(self, x_std: np.ndarray, target_onehot: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The generator's raw output ``u`` for a batch, in one forward pass (no gradients)."""

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        """A framework model's output for numpy inputs shaped like the data (no gradients, inference mode)."""

    def get_weights(self) -> Dict[str, np.ndarray]:
        """All network weights, keyed ``'generator/...'`` and ``'discriminator/...'``."""

    def set_weights(self, weights: Dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`get_weights` (networks must be built)."""
