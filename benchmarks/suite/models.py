"""Target classifiers and realism autoencoders (Keras), trained once and cached.

Architectures follow ``../shared/notes/reproduction.md`` (the authors' notebooks):

- MNIST classifier: Conv(64, k2, same, relu), MaxPool 2, Dropout .3, Conv(32, k2, same, relu),
  MaxPool 2, Dropout .3, Flatten, Dense 256 relu, Dropout .5, Dense 10 softmax; Adam 1e-3,
  batch 64.
- MNIST denoising autoencoder: Conv16-Conv8-Conv8 (3x3 relu, each followed by a 2x2 max-pool, latent
  4x4x8), mirrored decoder with up-sampling, last Conv1 linear; trained on ``clip(x + 0.5 N(0, 1))``
  to reproduce ``x``; Nadam, MSE, batch 32.
- Tabular classifiers: Pima Dense20-Dense20-Dense2 softmax (the notebook's); COMPAS three hidden
  layers (32, 32, 16) as in the paper's description; Adam 1e-3, batch 64.
- Tabular denoising autoencoders: Dense 32-8-32 relu with a linear output, trained on
  ``x + 0.5 N(0, 1)`` (in the encoded space) to reproduce ``x``. The authors' tabular autoencoder
  (tanh output on standardised data, almost no noise) hardly separated data from noise; this one
  is a proper denoising autoencoder, and its reference errors (test data, uniform noise) are
  printed beside every realism figure.

Weights are cached as ``.npz`` files of ``model.get_weights()``, so the same file loads into an
eager Keras model, into one built inside a TF1 graph for alibi's explainers, and into the
PyTorch port (:func:`torch_classifier`).
"""

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from benchmarks.suite.data import Dataset

Keras = Any
"""A ``tf.keras.Model``."""

ARCHITECTURE_VERSION = 1
"""Bumped whenever a builder below changes, so that stale cached weights are not reused."""

COMPAS_HIDDEN = (32, 32, 16)
PIMA_HIDDEN = (20, 20)


def _tf() -> Any:
    import tensorflow as tf

    return tf


def classifier_hidden(name: str) -> Sequence[int]:
    return COMPAS_HIDDEN if name == "compas" else PIMA_HIDDEN


def build_classifier(ds: Dataset) -> Keras:
    """The (untrained) target classifier of a data set; works eagerly and inside a TF1 graph."""
    tf = _tf()
    layers = tf.keras.layers
    if ds.is_image:
        return tf.keras.Sequential([
            layers.InputLayer(input_shape=(28, 28, 1)),
            layers.Conv2D(64, 2, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.3),
            layers.Conv2D(32, 2, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ], name="classifier")
    d = ds.X_train.shape[1]
    stack: List[Any] = [layers.InputLayer(input_shape=(d,))]
    stack += [layers.Dense(h, activation="relu") for h in classifier_hidden(ds.name)]
    stack.append(layers.Dense(2, activation="softmax"))
    return tf.keras.Sequential(stack, name="classifier")


def build_autoencoder(ds: Dataset) -> Tuple[Keras, Keras]:
    """The (untrained) denoising autoencoder and its encoder (the encoder is CFProto's ``enc_model``)."""
    tf = _tf()
    layers = tf.keras.layers
    if ds.is_image:
        encoder = tf.keras.Sequential([
            layers.InputLayer(input_shape=(28, 28, 1)),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2, padding="same"),
            layers.Conv2D(8, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2, padding="same"),
            layers.Conv2D(8, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2, padding="same"),
        ], name="encoder")
        decoder = tf.keras.Sequential([
            layers.InputLayer(input_shape=(4, 4, 8)),
            layers.Conv2D(8, 3, padding="same", activation="relu"),
            layers.UpSampling2D(2),
            layers.Conv2D(8, 3, padding="same", activation="relu"),
            layers.UpSampling2D(2),
            layers.Conv2D(16, 3, padding="valid", activation="relu"),
            layers.UpSampling2D(2),
            layers.Conv2D(1, 3, padding="same", activation=None),
        ], name="decoder")
    else:
        d = ds.X_train.shape[1]
        encoder = tf.keras.Sequential([layers.InputLayer(input_shape=(d,)), layers.Dense(32, activation="relu"),
                                       layers.Dense(8, activation="relu")], name="encoder")
        decoder = tf.keras.Sequential([layers.InputLayer(input_shape=(8,)), layers.Dense(32, activation="relu"),
                                       layers.Dense(d)], name="decoder")
    autoencoder = tf.keras.Sequential([encoder, decoder], name="autoencoder")
    autoencoder.build((None,) + tuple(encoder.input_shape[1:]))
    return autoencoder, encoder


def recipe(ds: Dataset, kind: str, epochs: int, seed: int, data_path: Path) -> Dict[str, Any]:
    """Everything a cached model depends on (its hash names the cache file)."""
    stat = data_path.stat()
    return {"dataset": ds.name, "kind": kind, "architecture": ARCHITECTURE_VERSION, "epochs": epochs, "seed": seed,
            "n_train": int(len(ds.X_train)), "data_file": data_path.name, "data_bytes": stat.st_size}


def cache_path(cache_dir: Path, spec: Dict[str, Any]) -> Path:
    key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{spec['dataset']}-{spec['kind']}-{key}.npz"


def save_weights(model: Keras, path: Path, info: Dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, *model.get_weights())
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(info, indent=2))


def load_weights(path: Path) -> List[np.ndarray]:
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def read_info(path: Path) -> Dict[str, Any]:
    info: Dict[str, Any] = json.loads(path.with_suffix(".json").read_text())
    return info


def train_classifier(ds: Dataset, epochs: int, seed: int) -> Tuple[Keras, Dict[str, Any]]:
    """Train the target classifier eagerly (Adam 1e-3, batch 64); returns it and its test accuracy."""
    tf = _tf()
    tf.keras.utils.set_random_seed(seed)
    model = build_classifier(ds)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(ds.X_train, ds.y_train, batch_size=64, epochs=epochs, verbose=0, shuffle=True)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(predict(model, ds.X_test).argmax(1) == ds.y_test))
    return model, {"accuracy": accuracy, "train_s": seconds, "epochs": epochs}


def train_autoencoder(ds: Dataset, epochs: int, seed: int) -> Tuple[Keras, Dict[str, Any]]:
    """Train the denoising autoencoder eagerly (noise 0.5 N(0, 1); images clipped to [0, 1])."""
    tf = _tf()
    tf.keras.utils.set_random_seed(seed)
    autoencoder, _ = build_autoencoder(ds)
    rng = np.random.default_rng(seed)
    noisy = ds.X_train + 0.5 * rng.standard_normal(ds.X_train.shape).astype(np.float32)
    if ds.is_image:
        noisy = np.clip(noisy, 0.0, 1.0)
        autoencoder.compile(optimizer=tf.keras.optimizers.Nadam(), loss="mse")
        batch = 32
    else:
        autoencoder.compile(optimizer=tf.keras.optimizers.Nadam(1e-3), loss="mse")
        batch = 32
    start = time.perf_counter()
    autoencoder.fit(noisy, ds.X_train, batch_size=batch, epochs=epochs, verbose=0, shuffle=True)
    return autoencoder, {"train_s": time.perf_counter() - start, "epochs": epochs}


def predict(model: Keras, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """An eager Keras model's outputs for a numpy batch, in chunks (``training=False``)."""
    outs = [np.asarray(model(x[i:i + chunk], training=False)) for i in range(0, len(x), chunk)]
    return np.concatenate(outs) if outs else np.zeros((0,))


def keras_function(model: Keras) -> Callable[[np.ndarray], np.ndarray]:
    """A compiled numpy-in numpy-out function of an eager Keras model (a black-box predictor).

    Traced once per input shape with ``training=False``; this is how a served model is called.
    """
    tf = _tf()

    @tf.function(input_signature=[tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32)])
    def call(x: Any) -> Any:
        return model(x, training=False)

    def predict_fn(x: np.ndarray) -> np.ndarray:
        return np.asarray(call(tf.constant(np.asarray(x, dtype=np.float32))))

    return predict_fn


@dataclass
class Models:
    """Paths of the cached classifier and autoencoder of a data set, and what training them reported."""

    classifier: Path
    autoencoder: Path
    classifier_info: Dict[str, Any]
    autoencoder_info: Dict[str, Any]

    def to_dict(self) -> Dict[str, Any]:
        return {"classifier": str(self.classifier), "autoencoder": str(self.autoencoder),
                "classifier_info": self.classifier_info, "autoencoder_info": self.autoencoder_info}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Models":
        return cls(Path(d["classifier"]), Path(d["autoencoder"]), d["classifier_info"], d["autoencoder_info"])


def ensure_models(ds: Dataset, cache_dir: Path, data_path: Path, classifier_epochs: int, autoencoder_epochs: int,
                  seed: int, log: Callable[[str], None] = print) -> Models:
    """Train (or find in the cache) the classifier and the autoencoder of a data set."""
    paths = {}
    infos = {}
    for kind, epochs, train in (("classifier", classifier_epochs, train_classifier),
                                ("autoencoder", autoencoder_epochs, train_autoencoder)):
        spec = recipe(ds, kind, epochs, seed, data_path)
        path = cache_path(cache_dir, spec)
        if path.is_file() and path.with_suffix(".json").is_file():
            info = read_info(path)
            log(f"  {ds.name} {kind}: cached ({path.name})")
        else:
            model, info = train(ds, epochs, seed)
            info = {**info, "recipe": spec}
            save_weights(model, path, info)
            log(f"  {ds.name} {kind}: trained in {info['train_s']:.0f} s" +
                (f", test accuracy {info['accuracy']:.4f}" if "accuracy" in info else ""))
        paths[kind], infos[kind] = path, info
    return Models(paths["classifier"], paths["autoencoder"], infos["classifier"], infos["autoencoder"])


def load_classifier(ds: Dataset, path: Path) -> Keras:
    """The cached classifier as a Keras model (eager, or inside the current TF1 graph)."""
    model = build_classifier(ds)
    model.set_weights(load_weights(path))
    return model


def load_autoencoder(ds: Dataset, path: Path) -> Tuple[Keras, Keras]:
    """The cached autoencoder and its encoder (eager, or inside the current TF1 graph)."""
    autoencoder, encoder = build_autoencoder(ds)
    autoencoder.set_weights(load_weights(path))
    return autoencoder, encoder


# ---------------------------------------------------------------------------------------------
# The same classifier in PyTorch (for the PyTorch backend: white-box on identical weights)
# ---------------------------------------------------------------------------------------------


def torch_classifier(ds: Dataset, path: Path) -> Any:
    """A ``torch.nn.Module`` computing exactly the cached Keras classifier (eval mode).

    Keras kernels are moved to torch's layouts, ``'same'`` padding of the 2x2 convolutions is
    TensorFlow's (one extra row and column at the bottom and right), and the flatten runs in
    Keras's channels-last order, so the outputs agree to float32 rounding.
    """
    import torch
    from torch import nn

    weights = [torch.from_numpy(np.ascontiguousarray(w)) for w in load_weights(path)]

    def dense(kernel: Any, bias: Any) -> nn.Linear:
        layer = nn.Linear(kernel.shape[0], kernel.shape[1])
        with torch.no_grad():
            layer.weight.copy_(kernel.T)
            layer.bias.copy_(bias)
        return layer

    if ds.is_image:
        def conv(kernel: Any, bias: Any) -> nn.Conv2d:
            layer = nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[0])
            with torch.no_grad():
                layer.weight.copy_(kernel.permute(3, 2, 0, 1))
                layer.bias.copy_(bias)
            return layer

        class MnistNet(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv1, self.conv2 = conv(weights[0], weights[1]), conv(weights[2], weights[3])
                self.fc1, self.fc2 = dense(weights[4], weights[5]), dense(weights[6], weights[7])

            def forward(self, x: Any) -> Any:
                h = x.permute(0, 3, 1, 2)  # NHWC -> NCHW
                h = nn.functional.max_pool2d(torch.relu(self.conv1(nn.functional.pad(h, (0, 1, 0, 1)))), 2)
                h = nn.functional.max_pool2d(torch.relu(self.conv2(nn.functional.pad(h, (0, 1, 0, 1)))), 2)
                h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # Keras flattens channels-last
                return torch.softmax(self.fc2(torch.relu(self.fc1(h))), dim=-1)

        return MnistNet().eval()

    layers: List[nn.Module] = []
    for i in range(0, len(weights) - 2, 2):
        layers += [dense(weights[i], weights[i + 1]), nn.ReLU()]
    layers += [dense(weights[-2], weights[-1]), nn.Softmax(dim=-1)]
    return nn.Sequential(*layers).eval()


def torch_function(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy-in numpy-out function of a torch model."""
    import torch

    def predict_fn(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out: np.ndarray = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
        return out

    return predict_fn


def check_port(ds: Dataset, keras_model: Keras, torch_model: Any, x: np.ndarray, atol: float = 1e-4) -> float:
    """Largest difference between the Keras classifier and its PyTorch port on ``x`` (raises above ``atol``)."""
    diff = float(np.max(np.abs(predict(keras_model, x) - torch_function(torch_model)(x))))
    if diff > atol:
        raise RuntimeError(f"The PyTorch port of the {ds.name} classifier disagrees with Keras by {diff:.2e}.")
    return diff
