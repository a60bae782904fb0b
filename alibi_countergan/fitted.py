"""What ``fit`` learns, held in one immutable record.

:class:`FittedState` is built aside by :meth:`CounteRGAN.fit <alibi_countergan.explainer.CounteRGAN.fit>`
(or by loading a save) and swapped into the explainer with one assignment; ``explain`` reads it once, so a
concurrent ``fit`` never mixes an old state with a new one. The explainer's public fitted attributes
(``backend_``, ``space_``, ``n_classes_``, ``table_``, ``encoded_config_``, ``history_``) read it.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from alibi_countergan.backends import Backend
from alibi_countergan.constraints import FeatureSpace
from alibi_countergan.params import CounteRGANConfig
from alibi_countergan.table import TableSchema


@dataclass(frozen=True, eq=False)
class FittedState:
    """A fitted explainer's state.

    Attributes
    ----------
    backend
        The backend holding the trained networks.
    space
        The feature space: the fit data's statistics combined with the constraints.
    n_classes
        The predictor's number of classes.
    table
        The schema of a table fitted on (a DataFrame, or a label-encoded array with ``category_map``), else None.
    encoded
        The parameters in the generator's encoded features (the explainer's ``config`` without a table).
    history
        The training losses, one dict per iteration (filled while training runs).
    eye
        The one-hot target codes, ``(n_classes, n_classes)``.
    """

    backend: Backend
    space: FeatureSpace
    n_classes: int
    table: Optional[TableSchema]
    encoded: CounteRGANConfig
    history: List[Dict[str, float]] = field(default_factory=list)
    eye: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "eye", np.eye(self.n_classes, dtype=np.float32))
