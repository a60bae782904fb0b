"""alibi-countergan: real-time counterfactual explanations with residual GANs (CounteRGAN) for alibi."""

from alibi_countergan.callbacks import Callback, LossHistory, StopTraining, TrainingDivergedError
from alibi_countergan.explainer import CounteRGAN
from alibi_countergan.saving import IncompatibleSaveError, register_with_alibi
from alibi_countergan.version import __version__

register_with_alibi()  # explainer.save(path) and alibi.saving.load_explainer(path, predictor) for CounteRGAN

__all__ = ["CounteRGAN", "Callback", "LossHistory", "StopTraining", "TrainingDivergedError", "IncompatibleSaveError",
           "__version__"]
