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
from typing import Any, Dict, Optional, Protocol, Tuple

import numpy as np

from alibi_countergan.constraints import FeatureSpace
from alibi_countergan.layout import ImageLayout
from alibi_countergan.value import LossWeights


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
    """What a backend needs to know to build default networks.

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
    """

    feature_shape: Tuple[int, ...]
    n_classes: int
    discriminator_outputs: int
    image: Optional[ImageLayout]

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
    residual
        False only for the plain-GAN ablation: the generator outputs the whole counterfactual.
    learning_rate_generator, learning_rate_discriminator
        Adam learning rates.
    beta_1
        Adam's first-moment decay, shared by both optimisers.
    """

    space: FeatureSpace
    weights: LossWeights
    white_box: bool
    residual: bool
    learning_rate_generator: float
    learning_rate_discriminator: float
    beta_1: float


@dataclass(frozen=True)
class Batch:
    """One training batch, as float32/int64 numpy arrays (built by the core).

    Attributes
    ----------
    x
        Instances, ``(B, n_features)``, in the user's units.
    x_std
        The same, standardised with the fit data's statistics.
    target
        Target class per row, ``(B,)``.
    target_onehot
        The same, one-hot, ``(B, n_classes)``.
    d_index
        Discriminator output used for the row's counterfactual: the target (black-box) or 0.
    real_weights
        Weights of the real term, ``(B, discriminator_outputs)``, summing to 1.
    mask
        1 where a feature may change, ``(B, n_features)``.
    cost_weights
        Per row, 1 if the cost of the change is paid in the generator's loss (its counterfactual
        already reaches the target), else 0, ``(B,)``.
    """

    x: np.ndarray
    x_std: np.ndarray
    target: np.ndarray
    target_onehot: np.ndarray
    d_index: np.ndarray
    real_weights: np.ndarray
    mask: np.ndarray
    cost_weights: np.ndarray


class Backend(Protocol):
    """A framework's implementation of the training and inference primitives."""

    name: str
    """``'pytorch'`` or ``'tensorflow'``."""

    def build(self, network: NetworkSpec, training: TrainingSpec, predictor: Any, seed: int,
              generator: Any = None, discriminator: Any = None) -> None:
        """Create (or adopt) the networks and the optimisers.

        ``predictor`` is the framework model in white-box mode (its gradients drive the
        generator) and None in black-box mode. ``generator`` and ``discriminator`` replace the
        default networks; they take flat inputs (see :mod:`alibi_countergan.value`).
        """

    def discriminator_step(self, batch: Batch) -> Dict[str, float]:
        """One update of the discriminator; returns the loss parts as floats."""

    def generator_step(self, batch: Batch) -> Dict[str, float]:
        """One update of the generator; returns the loss parts as floats."""

    def generate(self, x_std: np.ndarray, target_onehot: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The generator's raw output ``u`` for a batch, in one forward pass (no gradients)."""

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        """A framework model's output for numpy inputs shaped like the data (no gradients, inference mode)."""

    def get_weights(self) -> Dict[str, np.ndarray]:
        """All network weights, keyed ``'generator/...'`` and ``'discriminator/...'``."""

    def set_weights(self, weights: Dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`get_weights` (networks must be built)."""
