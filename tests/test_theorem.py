"""Theorem 1 of the paper, checked empirically.

For the black-box value function (eq. 5), the generator's output distribution converges to a
density proportional to ``C_t(x) p_data(x)``. With a known one-dimensional data distribution and a
known classifier, we train the black-box generator with the paper's weighting (power 1) and no
regularisation, and measure the Wasserstein distance between its counterfactuals and samples of
that density: it must be far smaller than the distance the inputs started from.
"""

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from alibi_countergan import CounteRGAN

SLOPE = 3.0


def classifier(x: np.ndarray) -> np.ndarray:
    """A known logistic classifier on one feature: P(class 1 | x) = sigmoid(3 x)."""
    p1 = 1.0 / (1.0 + np.exp(-SLOPE * x[:, 0]))
    return np.stack([1.0 - p1, p1], axis=1)


def target_samples(rng: np.random.Generator, t: int, n: int) -> np.ndarray:
    """Samples of the density proportional to C_t(x) p_data(x), with p_data = N(0, 1), by rejection."""
    x = rng.normal(size=8 * n)
    keep = rng.random(8 * n) < classifier(x[:, None])[:, t]
    return x[keep][:n]


@pytest.mark.parametrize("backend", ["pytorch"])
def test_black_box_generator_converges_to_the_classifier_weighted_density(backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 1)).astype(np.float32)
    explainer = CounteRGAN(classifier, (1, 1), backend=backend, method="black-box", real_weight_power=1.0,
                           l1_weight=0.0, l2_weight=0.0, min_change=0.0, feature_range=(-6.0, 6.0),
                           train_steps=1500, random_mask_rate=0.0, seed=0, verbose=False,
                           # the theorem assumes a discriminator kept near its optimum: two D updates per G update
                           discriminator_steps=2, generator_steps=1).fit(X)
    X_test = rng.normal(size=(4000, 1)).astype(np.float32)
    predicted = classifier(X_test).argmax(1)
    for t in (0, 1):
        inputs = X_test[predicted != t]  # the requests the generator serves for target t
        cf = explainer.explain(inputs, target_class=t, refine=False).cf["X"][:, 0]  # the generator itself
        reference = target_samples(rng, t, 4000)
        start = wasserstein_distance(inputs[:, 0], reference)
        reached = wasserstein_distance(cf, reference)
        assert reached < 0.25 * start, f"target {t}: W1 {start:.3f} -> {reached:.3f}"
