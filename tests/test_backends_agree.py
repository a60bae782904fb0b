"""The PyTorch and TensorFlow backends compute the same thing.

The default networks have the same architecture in both frameworks, so the same weights can be
loaded into both: then the two backends must report the same losses for the same batch, step
after step, and generate the same counterfactuals. This checks the Keras networks (padding,
cropping, layouts), TFOps against TorchOps inside the shared value functions, and the optimiser
settings (Adam, beta_1, epsilon) at once.
"""

from typing import Dict, List, Tuple

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")

from alibi_countergan.backends import NetworkSpec, TrainingSpec, load_backend  # noqa: E402
from alibi_countergan.features import build_feature_space  # noqa: E402
from alibi_countergan.layout import ImageLayout  # noqa: E402
from alibi_countergan.testing import KerasFramework, TorchFramework  # noqa: E402
from alibi_countergan.training import BatchSampler  # noqa: E402
from alibi_countergan.value import LossWeights  # noqa: E402

TORCH, KERAS = TorchFramework(), KerasFramework()

# torch state-dict prefix -> (Keras weight prefix, how the tensor is laid out)
_MLP_G = [("body.0", "body_0", "dense"), ("body.2", "body_1", "dense"), ("head", "head", "dense")]
_MLP_D = [("net.0", "body_0", "dense"), ("net.2", "body_1", "dense"), ("net.4", "head", "dense")]
_CONV_G = [("encode.0", "encode_1", "conv"), ("encode.2", "encode_2", "conv"),
           ("target_embedding", "target_embedding", "dense"), ("up_1", "up_1", "conv"), ("up_2", "up_2", "conv"),
           ("head", "head", "conv")]
_CONV_D = [("net.0", "conv_0", "conv"), ("net.2", "conv_1", "conv"), ("net.4", "conv_2", "conv"),
           ("head", "head", "flat_dense")]


def _to_keras(weights: Dict[str, np.ndarray], prefix: str, table: List[Tuple[str, str, str]],
              flat_shape: Tuple[int, int, int] = (0, 0, 0)) -> Dict[str, np.ndarray]:
    """torch weights (``get_weights`` of the torch backend) in the TensorFlow backend's keys and layouts."""
    out = {}
    for torch_name, keras_name, kind in table:
        w, b = weights[f"{prefix}/{torch_name}.weight"], weights[f"{prefix}/{torch_name}.bias"]
        if kind == "dense":
            kernel = w.T
        elif kind == "conv":  # Conv2d (out, in, kh, kw) and ConvTranspose2d (in, out, kh, kw) -> (kh, kw, ., .)
            kernel = w.transpose(2, 3, 1, 0)
        else:  # a dense layer after flattening NCHW (torch) instead of NHWC (Keras)
            c, h, wd = flat_shape
            kernel = w.reshape(w.shape[0], c, h, wd).transpose(0, 2, 3, 1).reshape(w.shape[0], -1).T
        out[f"{prefix}/{keras_name}/kernel"] = np.ascontiguousarray(kernel)
        out[f"{prefix}/{keras_name}/bias"] = b
    return out


def _copy_classifier(torch_model, keras_model):
    """Load a torch classifier's weights into the Keras classifier of the same architecture."""
    values = [v.detach().numpy() for v in torch_model.state_dict().values()]
    keras_model.set_weights([v.T if v.ndim == 2 else v for v in values])
    return keras_model


def _backends(network, training, classifiers, image):
    torch_backend, tf_backend = load_backend("pytorch"), load_backend("tensorflow")
    torch_backend.build(network, training, classifiers[0], seed=0)
    tf_backend.build(network, training, classifiers[1], seed=0)
    weights = torch_backend.get_weights()
    if image is None:
        tables = (_MLP_G, _MLP_D)
        flat = (0, 0, 0)
    else:
        tables = (_CONV_G, _CONV_D)
        h, w = image.height, image.width
        for _ in range(3):
            h, w = (h + 1) // 2, (w + 1) // 2
        flat = (64, h, w)
    tf_backend.set_weights({**_to_keras(weights, "generator", tables[0]),
                            **_to_keras(weights, "discriminator", tables[1], flat)})
    return torch_backend, tf_backend


@pytest.fixture(scope="module")
def pima_pair(pima):
    _, X_train, _, y_train, _ = pima
    torch_model = TORCH.train(TORCH.mlp(8, 2, X_train), X_train, y_train, epochs=5)
    return X_train, (torch_model, _copy_classifier(torch_model, KERAS.mlp(8, 2, X_train)))


@pytest.fixture(scope="module")
def digits_pair(digits):
    X, y = digits["X_train"], digits["y_train"]
    torch_model = TORCH.train(TORCH.digits_net(), X, y, epochs=3)
    return X, (torch_model, _copy_classifier(torch_model, KERAS.digits_net()))


def _setup(X, classifiers, white_box, image, plain_gan=False, X_model=None):
    """Both backends built on ``X`` (the classifiers see ``X_model``, by default ``X``) with the same weights."""
    flat = X.reshape(len(X), -1).astype(np.float32)
    X_model = X if X_model is None else X_model
    proba = TORCH.numpy_fn(classifiers[0])(X_model)
    np.testing.assert_allclose(KERAS.numpy_fn(classifiers[1])(X_model), proba, atol=1e-5)  # the same classifier
    k = proba.shape[1]
    space = build_feature_space(flat, channel_index=image.channel_index() if image else None,
                                feature_shape=X.shape[1:], feature_range=None, immutable=[0] if image is None else [],
                                monotone={1: 1} if image is None else {}, groups=(), grids={}, min_change=0.1)
    network = NetworkSpec(feature_shape=X.shape[1:], n_classes=k, discriminator_outputs=1 if white_box else k,
                          image=image, plain_gan=plain_gan)
    training = TrainingSpec(space=space, weights=LossWeights(1.0, 0.1, 0.01, 0.6), white_box=white_box,
                            learning_rate_generator=1e-3, learning_rate_discriminator=1e-3, beta_1=0.5)
    x_std = ((flat - space.center) / space.spread).astype(np.float32)
    sampler = BatchSampler(flat, x_std, proba, space, white_box, 64, np.random.default_rng(0), real_weight_power=4.0)
    pair = _backends(network, training, classifiers if white_box else (None, None), image)
    return pair, sampler


def _agree(pair, sampler, steps=4):
    torch_backend, tf_backend = pair
    batch = sampler.sample()  # identical weights: identical forward passes
    np.testing.assert_allclose(tf_backend.generate(batch.x_std, batch.target_onehot, batch.mask),
                               torch_backend.generate(batch.x_std, batch.target_onehot, batch.mask), atol=1e-6)
    for step in range(steps):
        for method in ("discriminator_step", "generator_step"):
            batch = sampler.sample()
            a, b = getattr(torch_backend, method)(batch), getattr(tf_backend, method)(batch)
            assert set(a) == set(b)
            for key in a:
                # The first update of each network starts from identical weights. Later values use
                # weights after Adam steps, which differ slightly between the frameworks: Keras puts
                # epsilon outside Adam's bias correction (an effective 3e-7 instead of 1e-8 at the
                # first step), which matters for gradients within a few 1e-7 of zero.
                exact = step == 0 and (method == "discriminator_step" or key != "g_adv")
                tol = 2e-5 if exact else 2e-3
                if key == "g_l1" and not exact:
                    # the cost counts changes past the min_change threshold (0.1 spreads): a weight that
                    # differs by 1e-7 can move one change across it, which moves the mean by 0.1 / n_features
                    tol += 4 * 0.1 / batch.x.shape[1]
                assert b[key] == pytest.approx(a[key], rel=tol, abs=tol), f"step {step}, {method}, {key}"


@pytest.mark.parametrize("white_box", [True, False], ids=["white-box", "black-box"])
def test_vector_backends_agree_on_the_same_weights_and_batches(pima_pair, white_box):
    X, classifiers = pima_pair
    _agree(*_setup(X, classifiers, white_box, None))


def test_plain_gan_ablation_agrees(pima_pair):
    X, classifiers = pima_pair
    _agree(*_setup(X, classifiers, True, None, plain_gan=True), steps=2)


def test_image_backends_agree_on_the_same_weights_and_batches(digits_pair):
    X, classifiers = digits_pair
    _agree(*_setup(X, classifiers, True, ImageLayout(8, 8, 1, True)), steps=3)


@pytest.mark.parametrize("size", [(8, 8), (7, 5)], ids=["8x8", "7x5"])
@pytest.mark.parametrize("channels_last", [True, False], ids=["channels-last", "channels-first"])
def test_three_channel_images_agree_in_either_layout(digits_pair, channels_last, size):
    # three different channels per digit, so that a mixed-up channel order or layout shows; 7x5 crops
    # need the generator's padding to multiples of 4
    X, classifiers = digits_pair
    height, width = size
    rgb = np.concatenate([X, 1.0 - X, X[:, ::-1] ** 2], axis=-1)[:, :height, :width]
    if not channels_last:
        rgb = np.moveaxis(rgb, -1, 1)
    _agree(*_setup(rgb, classifiers, False, ImageLayout(height, width, 3, channels_last), X_model=X), steps=3)
