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
and 1 per switched category, averaged over the variables. ``waste`` is
:func:`~alibi_countergan.constraints.wasted_residual`, the part of the numeric output that has no effect
(clipped, masked, below ``min_change``): paid by every row, it keeps the output bounded. The classifier
term is a hinge (as the ``target_proba`` of Wachter et al.'s search): it stops pushing once the target is
reached, and the cost is only paid by rows that reach it, so the cost never pulls a counterfactual back
across the boundary it has not crossed. With the plain ``-log C`` and an unconditional cost (the paper's
eq. 3), the cost and realism terms keep shrinking the changes of every row, and validity falls the longer
training runs.
"""

import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from alibi_countergan.constraints import SpaceTensors, change_cost, project, standardise, wasted_residual
from alibi_countergan.ops import Ops, Tensor

GeneratorFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(x_std, target_onehot, mask) -> u``: the generator network, flat features in and out."""

DiscriminatorFn = Callable[[Tensor], Tensor]
"""``x_std -> logits`` of shape ``(B, 1)`` (white-box) or ``(B, n_classes)`` (black-box)."""

ClassifierFn = Callable[[Tensor], Tensor]
"""``x -> class probabilities``: the white-box predictor on flat features."""

_EPS = 1e-7


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator's terms."""

    classifier: float
    l1: float
    l2: float
    target_proba: float = 0.6
    """Probability of the target class past which the classifier term stops pushing (white-box)."""


@dataclass(frozen=True)
class TensorBatch:
    """One training batch as framework tensors (see :class:`alibi_countergan.training.Batch`)."""

    x: Tensor
    x_std: Tensor
    target_onehot: Tensor
    target: Tensor
    d_index: Tensor
    real_weights: Tensor
    mask: Tensor
    cost_weights: Tensor


def counterfactuals(ops: Ops, generator: GeneratorFn, batch: TensorBatch, space: SpaceTensors,
                    *, residual: bool = True) -> Tuple[Tensor, Tensor]:
    """The generator's raw output ``u`` and the (differentiably) projected counterfactuals.

    With ``residual=False`` the generator's output is the whole counterfactual in standardised
    units (the paper's plain "GAN" baseline), still projected onto the constraints.
    """
    u = generator(batch.x_std, batch.target_onehot, batch.mask)
    if not residual:
        u = u - batch.x_std
    return u, project(ops, batch.x, u, batch.mask, space, hard=False)


def discriminator_objective(ops: Ops, generator: GeneratorFn, discriminator: DiscriminatorFn,
                            batch: TensorBatch, space: SpaceTensors,
                            *, residual: bool = True) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Loss of one discriminator update (to be minimised over the discriminator's weights).

    Returns
    -------
    The loss and its parts ``{'d_real', 'd_fake'}``.
    """
    _, cf = counterfactuals(ops, generator, batch, space, residual=residual)
    cf = ops.stop_gradient(cf)
    real = ops.sum(batch.real_weights * ops.softplus(-discriminator(batch.x_std)))
    fake = ops.mean(ops.softplus(ops.take_columns(discriminator(standardise(cf, space)), batch.d_index)))
    return real + fake, {"d_real": real, "d_fake": fake}


def generator_objective(ops: Ops, generator: GeneratorFn, discriminator: DiscriminatorFn,
                        classifier: Optional[ClassifierFn], batch: TensorBatch, space: SpaceTensors,
                        weights: LossWeights, *, residual: bool = True) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Loss of one generator update (to be minimised over the generator's weights).

    ``classifier`` is the differentiable predictor in white-box mode and None in black-box mode.

    Returns
    -------
    The loss and its parts ``{'g_adv', 'g_cls', 'g_l1', 'g_l2'}`` (``g_cls`` only in white-box mode).
    """
    u, cf = counterfactuals(ops, generator, batch, space, residual=residual)
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
