"""Each backend's Ops give the same constraint projection and value functions as numpy.

The projection and the losses are written once against :class:`alibi_countergan.ops.Ops`; this
runs them on the COMPAS table (one-hot groups, an ordinal grid, monotone and immutable features)
with every installed framework's Ops and compares with :data:`alibi_countergan.ops.NUMPY_OPS`.
"""

from typing import Any, Callable

import numpy as np
import pytest

from alibi_countergan.constraints import project
from alibi_countergan.features import build_feature_space
from alibi_countergan.metrics import violations
from alibi_countergan.ops import NUMPY_OPS
from alibi_countergan.training import BatchSampler
from alibi_countergan.value import LossWeights, TensorBatch, discriminator_objective, generator_objective


class Converter:
    """A framework's Ops and its way in and out of numpy."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "pytorch":
            import torch

            from alibi_countergan.backends.pytorch import TorchOps

            self.ops: Any = TorchOps(torch.device("cpu"))
            self.tensor: Callable[[np.ndarray], Any] = torch.from_numpy
            self.array: Callable[[Any], np.ndarray] = lambda t: t.detach().numpy()
            self.matmul: Callable[[Any, Any], Any] = torch.matmul
        else:
            import tensorflow as tf

            from alibi_countergan.backends.tensorflow import TFOps

            self.ops = TFOps()
            self.tensor = tf.convert_to_tensor
            self.array = lambda t: t.numpy()
            self.matmul = tf.matmul


@pytest.fixture(scope="module")
def compas_space(compas):
    data, X_train, _, _, _ = compas
    # priors_count (column 1) is ordinal on 0..38 and may only decrease; age (0) is immutable
    grid = np.arange(0, 39, dtype=np.float32)
    space = build_feature_space(X_train, channel_index=None, feature_shape=X_train.shape[1:], feature_range=None,
                                immutable=[0], monotone={1: -1, 2: 1}, groups=tuple(
                                    (s, s + n) for s, n in sorted(data.cat_vars.items())),
                                grids={1: grid}, min_change=0.05)
    return X_train, space


@pytest.mark.parametrize("hard", [True, False], ids=["exact", "differentiable"])
def test_projection_is_the_same_in_every_framework(backend, compas_space, hard):
    X, space = compas_space
    conv = Converter(backend.name)
    rng = np.random.default_rng(0)
    x = X[:300]
    u = rng.normal(0, 1.5, size=x.shape).astype(np.float32)
    mask = np.broadcast_to(space.mutable, x.shape).astype(np.float32).copy()
    mask[::3, 3:5] = 0.0  # some requests freeze more features
    expected = project(NUMPY_OPS, x, u, mask, space.tensors(NUMPY_OPS), hard=hard)
    got = conv.array(project(conv.ops, conv.tensor(x), conv.tensor(u), conv.tensor(mask), space.tensors(conv.ops),
                             hard=hard))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)
    if hard:  # and the exact projection keeps every constraint
        broken = violations(x, got, space, mask)
        assert all(int(v.sum()) == 0 for v in broken.values()), {k: int(v.sum()) for k, v in broken.items()}
        assert np.any(got != x)


@pytest.mark.parametrize("white_box", [True, False], ids=["white-box", "black-box"])
def test_value_functions_are_the_same_in_every_framework(backend, compas_space, white_box):
    X, space = compas_space
    conv = Converter(backend.name)
    rng = np.random.default_rng(1)
    n, k = X.shape[1], 2
    d_out = 1 if white_box else k
    w_g = rng.normal(0, 0.3, (2 * n + k, n)).astype(np.float32)
    w_d = rng.normal(0, 0.3, (n, d_out)).astype(np.float32)
    w_c = rng.normal(0, 0.3, (n, k)).astype(np.float32)
    x_std = ((X - space.center) / space.spread).astype(np.float32)
    proba = NUMPY_OPS.softmax(x_std @ w_c)
    sampler = BatchSampler(X, x_std, proba, space, white_box, 128, np.random.default_rng(2), real_weight_power=4.0)
    batch = sampler.sample()
    weights = LossWeights(1.0, 0.1, 0.05, 0.6)

    def losses(ops, tensor, matmul):
        g, d, c = tensor(w_g), tensor(w_d), tensor(w_c)

        def generator(xs, onehot, mask):
            return matmul(ops.concat([xs, mask, onehot], axis=1), g)

        def discriminator(xs):
            return matmul(xs, d)

        def classifier(x):
            return ops.softmax(matmul((x - space_t.center) / space_t.spread, c))

        space_t = space.tensors(ops)
        t = TensorBatch(x=tensor(batch.x), x_std=tensor(batch.x_std), target_onehot=tensor(batch.target_onehot),
                        target=tensor(batch.target), d_index=tensor(batch.d_index),
                        real_weights=tensor(batch.real_weights), mask=tensor(batch.mask),
                        cost_weights=tensor(batch.cost_weights))
        _, d_parts = discriminator_objective(ops, generator, discriminator, t, space_t)
        _, g_parts = generator_objective(ops, generator, discriminator, classifier if white_box else None, t,
                                         space_t, weights)
        return {**d_parts, **g_parts}

    expected = losses(NUMPY_OPS, np.asarray, np.matmul)
    got = losses(conv.ops, conv.tensor, conv.matmul)
    assert set(got) == set(expected) == ({"d_real", "d_fake", "g_adv", "g_l1", "g_l2"} | ({"g_cls"} if white_box
                                                                                         else set()))
    for key in expected:
        assert float(conv.array(got[key])) == pytest.approx(float(expected[key]), rel=1e-5, abs=1e-6), key
