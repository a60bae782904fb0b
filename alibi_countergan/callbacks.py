"""Callbacks run after every training iteration, and the exceptions that end training."""

from typing import TYPE_CHECKING, Dict, List, Mapping, Protocol

if TYPE_CHECKING:
    from alibi_countergan.explainer import CounteRGAN


class Callback(Protocol):
    """Called after every training iteration of :meth:`CounteRGAN.fit`.

    The explainer is usable inside the call (``explainer.explain`` works with the generator as it
    is at that step), which makes validation-based monitoring or early stopping a few lines.
    Raise :class:`StopTraining` to end training early, keeping the generator as it is.
    """

    def __call__(self, step: int, losses: Mapping[str, float], explainer: "CounteRGAN") -> None:
        """Receive the iteration number (from 0), the latest value of every loss part, and the explainer."""


class StopTraining(Exception):
    """Raised by a callback to end :meth:`CounteRGAN.fit` early; the explainer stays fitted."""


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite during :meth:`CounteRGAN.fit`."""


class LossHistory:
    """A callback that records every loss part at every iteration.

    Attributes
    ----------
    history
        ``{loss name: [value per iteration]}``.
    """

    def __init__(self) -> None:
        self.history: Dict[str, List[float]] = {}

    def __call__(self, step: int, losses: Mapping[str, float], explainer: "CounteRGAN") -> None:
        for name, value in losses.items():
            self.history.setdefault(name, []).append(float(value))
