"""The CounteRGAN value functions, written once for every framework.

A backend calls :func:`discriminator_objective` and :func:`generator_objective` inside its own
gradient context (``torch.autograd`` or ``tf.GradientTape``) with its networks as plain callables
and its :class:`~alibi_countergan.ops.Ops`; it then only applies the gradients with its
optimiser. The structure of the losses therefore lives here and nowhere else.

Discriminator (both methods), with logits ``s = D(x)`` and ``softplus(-s) = -log sigmoid(s)``::

    L_D = sum_i sum_k w_ik softplus(-D_k(x_i))  +  mean_i softplus(D_{t_i}(x_i + G(x_i, t_i)))

White-box (paper eq. 2 to 4): ``D`` has one output and ``w_i = 1 / B``. Black-box (eq. 5): ``D``
has one output per target class and ``w_ik = C_k(x_i) / (K sum_j C_k(x_j))``, so each class's
real term is the eq. 5 weighted mean and the optimum of ``D_k`` compares fakes against the
density ``C_k(x) p_data(x)`` (Theorem 1, one class at a time).

Generator, with the non-saturating GAN term, ``u`` the residual in units of spread, ``tau`` the
probability a counterfactual must reach (``LossWeights.target_proba``) and ``r_i`` 1 when row ``i``'s
counterfactual already reaches it (``Batch.cost_weights``, measured by the core with the predictor)::

    L_G = mean_i softplus(-D_{t_i}(x_cf_i))
          [ + classifier_weight * mean_i max(0, log tau - log C_{t_i}(x_cf_i)) ]      (white-box only)
          + l1_weight * mean_i [r_i * cost(x_i, x_cf_i) + waste_i] + l2_weight * mean_i mean_j u_ij ** 2

``cost`` is :func:`~alibi_countergan.constraints.change_cost`: ``|change| / spread`` per numeric feature
and the category cost (``category_cost``, 1 by default) per switched category, averaged over the variables.
``waste`` is :func:`~alibi_countergan.constraints.wasted_residual`, the part of the numeric output that has no effect
(clipped, masked, below ``min_change``): paid by every row, it keeps the output bounded. The classifier
term is a hinge (as the ``target_proba`` of Wachter et al.'s search): it stops pushing once the target is
reached, and the cost is only paid by rows that reach it, so the cost never pulls a counterfactual back
across the boundary it has not crossed. With the plain ``-log C`` and an unconditional cost (the paper's
eq. 3), the cost and realism terms keep shrinking the changes of every row, and validity falls the longer
training runs.
"""

import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, Generic, NamedTuple, Optional, Tuple, TypeVar

import numpy as np

from alibi_countergan.constraints import SpaceTensors, change_cost, project, standardise, wasted_residual
from alibi_countergan.ops import Ops, Tensor

GeneratorFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(x_std, target_onehot, mask) -> u``: the generator network, flat features in and out."""

DiscriminatorFn = Callable[[Tensor], Tensor]
"""``x_std -> logits`` of shape ``(B, 1)`` (white-box) or ``(B, n_classes)`` (black-box)."""

ClassifierFn = Callable[[Tensor], Tensor]
"""``x -> class probabilities``: the white-box predictor on flat features."""

_EPS = 1e-7

A = TypeVar("A")
"""The array type of a :class:`Batch` (``np.ndarray``, ``torch.Tensor``, ``tf.Tensor``, ...)."""
B = TypeVar("B")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator's terms, and where its classifier term stops.

    Attributes
    ----------
    classifier, l1, l2
        Weights of the classifier, cost and squared-residual terms.
    target_proba
        Probability of the target class past which the classifier term stops pushing (white-box); the
        explainer derives it from its own ``target_proba`` (``CounteRGAN._training_proba``), so it has no
        default here.
    """

    classifier: float
    l1: float
    l2: float
    target_proba: float


class ArraySpec(NamedTuple):
    """Name, dtype and shape of one of a :class:`Batch`'s arrays (``None`` for the batch axis)."""

    name: str
    dtype: np.dtype
    shape: Tuple[Optional[int], ...]


def _column(dtype: str, width: Optional[str] = None) -> Any:
    # a Batch field: its dtype, and the spec size its second axis has (None: one value per row)
    return field(metadata={"dtype": np.dtype(dtype), "width": width})


@dataclass(frozen=True)
class Batch(Generic[A]):
    """One training batch: the one record the core builds and every backend reads, by field name.

    The core (:class:`alibi_countergan.training.BatchSampler`) fills it with numpy arrays
    (``Batch[np.ndarray]``); a backend turns it into its framework's tensors with one call to
    :meth:`map` and hands the result to the value functions. Each field declares its dtype and
    shape once (:meth:`specs`), from which the TensorFlow backend derives its input signature.

    Attributes
    ----------
    x
        Instances, ``(B, n_features)``, float32, in the user's units.
    x_std
        The same, standardised with the fit data's statistics.
    target
        Target class per row, ``(B,)``, int64.
    target_onehot
        The same, one-hot, ``(B, n_classes)``, float32.
    d_index
        Discriminator output used for the row's counterfactual: the target (black-box) or 0, ``(B,)``, int64.
    real_weights
        Weights of the real term, ``(B, discriminator_outputs)``, float32, summing to 1.
    mask
        1 where a feature may change, ``(B, n_features)``, float32.
    cost_weights
        Per row, 1 if the cost of the change is paid in the generator's loss (its counterfactual
        already reaches the target), else 0, ``(B,)``, float32.
    """

    x: A = _column("float32", "features")
    x_std: A = _column("float32", "features")
    target: A = _column("int64")
    target_onehot: A = _column("float32", "classes")
    d_index: A = _column("int64")
    real_weights: A = _column("float32", "outputs")
    mask: A = _column("float32", "features")
    cost_weights: A = _column("float32")

    def map(self, convert: Callable[[A], B]) -> "Batch[B]":
        """The same batch with ``convert`` applied to every field (e.g. numpy arrays to tensors)."""
        return Batch(**{f.name: convert(getattr(self, f.name)) for f in fields(self)})

    def as_dict(self) -> Dict[str, A]:
        """The fields by name (shallow: the arrays are not copied)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @staticmethod
    def specs(n_features: int, n_classes: int, discriminator_outputs: int) -> "Batch[ArraySpec]":
        """Each field's name, dtype and shape for networks of these sizes."""
        sizes = {"features": n_features, "classes": n_classes, "outputs": discriminator_outputs}
        return Batch(**{f.name: ArraySpec(f.name, f.metadata["dtype"], (None,) if f.metadata["width"] is None
                                          else (None, sizes[f.metadata["width"]])) for f in fields(Batch)})


TensorBatch = Batch
"""The name the value functions' callers used for :class:`Batch` (the same record)."""


def counterfactuals(ops: Ops, generator: GeneratorFn, batch: "Batch[Tensor]", space: SpaceTensors
                    ) -> Tuple[Tensor, Tensor]:
    """The generator's raw output ``u`` and the (differentiably) projected counterfactuals."""
    u = generator(batch.x_std, batch.target_onehot, batch.mask)
    return u, project(ops, batch.x, u, batch.mask, space, hard=False)


def discriminator_objective(ops: Ops, generator: GeneratorFn, discriminator: DiscriminatorFn,
                            batch: "Batch[Tensor]", space: SpaceTensors) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Loss of one discriminator update (to be minimised over the discriminator's weights).

    Returns
    -------
    The loss and its parts ``{'d_real', 'd_fake'}``.
    """
    _, cf = counterfactuals(ops, generator, batch, space)
    cf = ops.stop_gradient(cf)
    real = ops.sum(batch.real_weights * ops.softplus(-discriminator(batch.x_std)))
    fake = ops.mean(ops.softplus(ops.take_columns(discriminator(standardise(cf, space)), batch.d_index)))
    return real + fake, {"d_real": real, "d_fake": fake}


def generator_objective(ops: Ops, generator: GeneratorFn, discriminator: DiscriminatorFn,
                        classifier: Optional[ClassifierFn], batch: "Batch[Tensor]", space: SpaceTensors,
                        weights: LossWeights) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Loss of one generator update (to be minimised over the generator's weights).

    ``classifier`` is the differentiable predictor in white-box mode and None in black-box mode.

    Returns
    -------
    The loss and its parts ``{'g_adv', 'g_cls', 'g_l1', 'g_l2'}`` (``g_cls`` only in white-box mode).
    """
    u, cf = counterfactuals(ops, generator, batch, space)
    adversarial = ops.mean(ops.softplus(-ops.take_columns(discriminator(standardise(cf, space)), batch.d_index)))
    l1 = ops.mean(batch.cost_weights * change_cost(ops, batch.x, cf, space)
                  + wasted_residual(ops, batch.x, u, batch.mask, cf, space))
    l2 = ops.mean(ops.square(u * batch.mask))
    loss = adversarial + weights.l1 * l1 + weights.l2 * l2
    parts = {"g_adv": adversarial, "g_l1": l1, "g_l2": l2}
    if classifier is not None:
        proba = ops.take_columns(classifier(cf), batch.target)
        cls = ops.mean(ops.relu(math.log(weights.target_proba) - ops.log(proba + _EPS)))
        loss = loss + weights.classifier * cls
        parts["g_cls"] = cls
    return loss, parts
