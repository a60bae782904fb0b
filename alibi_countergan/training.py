"""The training loop, and its batch and target sampling (framework-free)."""

import logging
import math
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

import numpy as np
from tqdm.auto import tqdm

from alibi_countergan.backends.base import Backend
from alibi_countergan.callbacks import StopTraining, TrainingDivergedError
from alibi_countergan.constraints import FeatureSpace
from alibi_countergan.value import Batch

if TYPE_CHECKING:
    from alibi_countergan.fitted import FittedState

logger = logging.getLogger(__name__)


class BatchSampler:
    """Draws training batches by index from one array, with a target for every row.

    Targets are drawn uniformly among the classes other than the predictor's class for the row:
    those are the requests ``explain`` serves, and none of the generator's capacity goes to the
    trivial "keep the class" case.

    In black-box mode the real term of the discriminator is weighted per target class ``k`` by
    ``C_k(x_i)``, normalised within the batch so that each class carries the same total weight
    (``1 / K``); the predictor's probabilities are computed once for the fit data, not per batch.

    Parameters
    ----------
    x
        Fit data, flattened, float32.
    x_std
        The same, standardised.
    proba
        The predictor's probabilities for ``x``.
    space
        Feature statistics and constraints (its ``mutable`` mask is every row's mask).
    white_box
        Whether the discriminator has one output (white-box) or one per class (black-box).
    batch_size
        Rows per batch.
    rng
        Source of randomness (the explainer's seed).
    random_mask_rate
        Share of rows that also get a random subset of their mutable features frozen (each row its
        own share of frozen features, uniform in [0, 1]), so that the generator learns to act when a
        request freezes features at explain time. The other rows use the static mask only.
    """

    def __init__(self, x: np.ndarray, x_std: np.ndarray, proba: np.ndarray, space: FeatureSpace,
                 white_box: bool, batch_size: int, rng: np.random.Generator,
                 random_mask_rate: float = 0.0, real_weight_power: float = 1.0) -> None:
        self.x, self.x_std, self.proba = x, x_std, proba
        self.predicted = proba.argmax(axis=1)
        self.n_classes = proba.shape[1]
        self.white_box = white_box
        self.batch_size = min(batch_size, len(x))
        self.rng = rng
        self.mutable = space.mutable.astype(np.float32)
        self.groups = space.groups
        self.random_mask_rate = random_mask_rate
        self.eye = np.eye(self.n_classes, dtype=np.float32)
        if np.isinf(real_weight_power):
            self.real_proba = self.eye[self.predicted]
        else:
            self.real_proba = (proba.astype(np.float64) ** real_weight_power).astype(np.float32)

    def sample(self) -> "Batch[np.ndarray]":
        """A new batch."""
        b, k = self.batch_size, self.n_classes
        index = self.rng.integers(0, len(self.x), b)
        target = (self.predicted[index] + self.rng.integers(1, k, b)) % k
        if self.white_box:
            d_index = np.zeros(b, dtype=np.int64)
            weights = np.full((b, 1), 1.0 / b, dtype=np.float32)
        else:
            d_index = target
            p = self.real_proba[index]
            totals = p.sum(axis=0, keepdims=True)
            weights = np.divide(p, k * totals, out=np.zeros_like(p), where=totals > 0).astype(np.float32)
        return Batch(x=self.x[index], x_std=self.x_std[index], target=target.astype(np.int64),
                     target_onehot=self.eye[target], d_index=d_index.astype(np.int64), real_weights=weights,
                     mask=self.masks(b), cost_weights=np.ones(b, dtype=np.float32))

    def masks(self, n: int) -> np.ndarray:
        """Per-row masks: the static one, and for some rows a random subset of features frozen too."""
        mask = np.broadcast_to(self.mutable, (n, self.mutable.size)).copy()
        if self.random_mask_rate <= 0:
            return mask
        frozen_rows = self.rng.random(n) < self.random_mask_rate
        keep_rate = self.rng.random((n, 1))
        keep = (self.rng.random(mask.shape) < keep_rate).astype(np.float32)
        for start, stop in self.groups:  # a one-hot group is frozen or free as a whole
            keep[:, start:stop] = keep[:, start:start + 1]
        mask[frozen_rows] *= keep[frozen_rows]
        return mask


class TailAverage:
    """Uniform average of the generator's weights over the last part of training (Polyak averaging).

    GAN generators oscillate around a good solution; averaging snapshots of the weights from the
    final iterations lands closer to its centre and makes the outcome of ``fit`` less dependent on
    the exact step at which training stops. Only the generator is averaged: it alone is used by
    ``explain``. Works through :meth:`Backend.get_weights`/``set_weights``, so it needs nothing
    from a backend.

    Parameters
    ----------
    total_steps
        Number of training iterations.
    share
        Share of the final iterations to average over (0 disables averaging).
    snapshots
        About how many snapshots to average.
    """

    def __init__(self, total_steps: int, share: float, snapshots: int = 20) -> None:
        self.start = total_steps - int(round(total_steps * share))
        self.every = max(1, (total_steps - self.start) // snapshots)
        self.enabled = share > 0 and total_steps - self.start >= 2
        self.sums: Optional[Dict[str, np.ndarray]] = None
        self.count = 0

    def update(self, step: int, backend: Backend) -> None:
        """Take a snapshot after iteration ``step`` (0-based) when it falls in the averaged tail."""
        if not self.enabled or step < self.start or (step - self.start) % self.every:
            return
        weights = {k: v for k, v in backend.get_weights().items() if k.startswith("generator/")}
        if self.sums is None:
            self.sums = {k: v.astype(np.float64) for k, v in weights.items()}
        else:
            for k, v in weights.items():
                self.sums[k] += v
        self.count += 1

    def apply(self, backend: Backend) -> None:
        """Replace the generator's weights by the average of the snapshots (integer buffers keep their value)."""
        if self.sums is None or self.count < 2:
            return
        current = backend.get_weights()
        averaged = {k: (s / self.count).astype(current[k].dtype) for k, s in self.sums.items()
                    if np.issubdtype(current[k].dtype, np.floating)}
        backend.set_weights({**current, **averaged})


def train_networks(explainer: Any, state: "FittedState", sampler: BatchSampler,
                   cost_weights: Callable[[Batch], Batch]) -> None:
    """The training loop: ``train_steps`` iterations of ``discriminator_steps`` discriminator steps and
    ``generator_steps`` generator steps on the state's backend, the losses appended to ``state.history``, the
    callbacks called after each iteration, then the tail average of the weights.

    Parameters
    ----------
    explainer
        The :class:`~alibi_countergan.explainer.CounteRGAN` being trained: its parameters give the schedule, and
        the callbacks receive it.
    state
        The fitted state the networks belong to (being built; not yet the explainer's).
    sampler
        The training batches.
    cost_weights
        The generator's batch with its ``cost_weights`` (which rows pay the cost of their change).

    Raises
    ------
    TrainingDivergedError
        When a loss becomes NaN or infinite.
    """
    backend = state.backend
    bar = tqdm(range(explainer.train_steps), desc="CounteRGAN fit", disable=not explainer.verbose, leave=False)
    losses: Dict[str, float] = {}
    average = TailAverage(explainer.train_steps, explainer.weight_averaging)
    try:
        for step in bar:
            for _ in range(explainer.discriminator_steps):
                losses.update(backend.discriminator_step(sampler.sample()))
            for _ in range(explainer.generator_steps):
                losses.update(backend.generator_step(cost_weights(sampler.sample())))
            bad = [k for k, v in losses.items() if not math.isfinite(v)]
            if bad:
                raise TrainingDivergedError(
                    f"Training diverged at iteration {step}: loss {bad[0]} is {losses[bad[0]]}. Lower the "
                    f"learning_rate (now {explainer.learning_rate}) or check the data's scale.")
            state.history.append(dict(losses))
            if explainer.verbose and step % 25 == 0:
                # the generator's losses in words: fooling the discriminator, -log P(target), size of the change
                bar.set_postfix({label: f"{losses[k]:.3f}" for k, label in (
                    ("g_adv", "realism"), ("g_cls", "classifier"), ("g_l1", "change")) if k in losses})
            for callback in explainer.callbacks:
                callback(step, dict(losses), explainer)
            average.update(step, backend)
    except StopTraining:
        logger.info("Training stopped by a callback at iteration %d; the generator is kept as it is.", step)
    else:
        average.apply(backend)
    finally:
        bar.close()
