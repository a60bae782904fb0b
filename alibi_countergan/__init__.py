"""alibi-countergan: real-time counterfactual explanations with residual GANs (CounteRGAN) for alibi."""

from alibi_countergan.callbacks import Callback, LossHistory, StopTraining, TrainingDivergedError
from alibi_countergan.explainer import CounteRGAN
from alibi_countergan.version import __version__

__all__ = ["CounteRGAN", "Callback", "LossHistory", "StopTraining", "TrainingDivergedError", "__version__"]
