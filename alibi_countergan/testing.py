"""Helpers that run one test or benchmark with each installed framework, shared by tests/ and benchmarks/.

A test asks for the ``backend`` fixture (see ``tests/conftest.py``) and gets the :class:`Framework`
of one installed backend: it builds and trains that framework's classifiers on the same data with
the same recipe, wraps them as plain numpy functions, and answers the framework-specific
questions a test has (the predictor's state, the global random state, layer types).
``benchmarks/backends.py`` trains its classifiers with the same helpers. Frameworks are imported
inside the helpers, so a missing one only removes its parameter. The PyTorch classifiers are
those of :mod:`alibi_countergan.classifiers`.
"""

import os
import random
import signal
import socket
import subprocess
from typing import Any, Callable, Dict, List, Set

import numpy as np

from alibi_countergan import classifiers


def counting_calls(predict: Callable[..., np.ndarray], calls: List[int]) -> Callable[..., np.ndarray]:
    """``predict``, appending the number of rows of each call to ``calls`` first: put in place of an explainer's
    ``_predict`` (the predictor as the explainer calls it), it counts the predictor calls of each ``explain``."""

    def counting(x: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(len(x))
        return predict(x, *args, **kwargs)

    return counting


class Framework:
    """What a backend-parametrised test needs from one framework."""

    name: str
    """The backend's name, as ``CounteRGAN(backend=...)`` takes it."""

    whitebox_type: str
    """Human name of a white-box model in error messages (``'torch.nn.Module'``, ``'tf.keras.Model'``)."""

    def __repr__(self) -> str:
        return self.name

    def mlp(self, d: int, k: int, x: np.ndarray, hidden: int = 32, batchnorm: bool = False) -> Any:
        """A softmax MLP classifier on raw features (standardisation with ``x``'s statistics first)."""
        raise NotImplementedError

    def digits_net(self) -> Any:
        """The digits classifier: flatten, dense 64 ReLU, dense 10 softmax."""
        raise NotImplementedError

    def train(self, model: Any, X: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0, lr: float = 3e-3) -> Any:
        """Train with Adam on the negative log-likelihood, in batches of 64 drawn by a seeded numpy generator."""
        raise NotImplementedError

    def numpy_fn(self, model: Any) -> Callable[[np.ndarray], np.ndarray]:
        """A plain prediction function (numpy in, numpy out) around a model."""
        raise NotImplementedError

    def channels_first(self, model: Any) -> Any:
        """A model taking ``(n, C, H, W)`` images that moves the channels last and calls ``model``."""
        raise NotImplementedError

    def exploding_discriminator(self, n_features: int) -> Any:
        """A discriminator network whose logits turn NaN from its eleventh call on."""
        raise NotImplementedError

    def layer_types(self, net: Any) -> Set[str]:
        """Lower-case class names of a network's layers (``'conv2d'`` for either framework's convolution)."""
        raise NotImplementedError

    def state(self, model: Any) -> Dict[str, Any]:
        """Everything about a model that fitting an explainer must leave alone (weights, flags, gradients)."""
        raise NotImplementedError

    def seed_globals(self, seed: int) -> None:
        """Seed numpy's and Python's global generators and the framework's global random state."""
        np.random.seed(seed)  # noqa: NPY002  (the legacy global state is what users' code may rely on)
        random.seed(seed)

    def draw_globals(self) -> List[float]:
        """Draws from the global generators seeded by :meth:`seed_globals`."""
        return list(np.random.rand(3)) + [random.random()]  # noqa: NPY002


class TorchFramework(Framework):
    """PyTorch: the classifiers of :mod:`alibi_countergan.classifiers`."""

    name = "pytorch"
    whitebox_type = "torch.nn.Module"

    def mlp(self, d: int, k: int, x: np.ndarray, hidden: int = 32, batchnorm: bool = False) -> Any:
        return classifiers.mlp(x, k, hidden=(hidden, hidden), batchnorm=batchnorm)

    def digits_net(self) -> Any:
        from torch import nn

        return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10), nn.Softmax(dim=-1))

    def train(self, model: Any, X: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0, lr: float = 3e-3) -> Any:
        return classifiers.train(model, X, y, epochs=epochs, seed=seed, learning_rate=lr)

    def numpy_fn(self, model: Any) -> Callable[[np.ndarray], np.ndarray]:
        return classifiers.numpy_predictor(model)

    def channels_first(self, model: Any) -> Any:
        import torch

        class ChannelsFirst(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: Any) -> Any:
                return self.inner(x.movedim(1, -1))

        return ChannelsFirst(model)

    def exploding_discriminator(self, n_features: int) -> Any:
        import torch

        class Exploding(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.linear = torch.nn.Linear(n_features, 1)
                self.calls = 0

            def forward(self, x: Any) -> Any:
                self.calls += 1
                out = self.linear(x)
                return out * float("nan") if self.calls > 10 else out

        return Exploding()

    def layer_types(self, net: Any) -> Set[str]:
        return {type(m).__name__.lower() for m in net.modules()}

    def state(self, model: Any) -> Dict[str, Any]:
        return {"weights": {k: v.detach().clone().numpy() for k, v in model.state_dict().items()},
                "training": [m.training for m in model.modules()],
                "requires_grad": [p.requires_grad for p in model.parameters()],
                "grads": [p.grad is None for p in model.parameters()]}

    def seed_globals(self, seed: int) -> None:
        import torch

        super().seed_globals(seed)
        torch.manual_seed(seed)

    def draw_globals(self) -> List[float]:
        import torch

        return super().draw_globals() + torch.rand(3).tolist()


class KerasFramework(Framework):
    """TensorFlow: Keras models with the same architectures and the same training recipe."""

    name = "tensorflow"
    whitebox_type = "tf.keras.Model"

    def mlp(self, d: int, k: int, x: np.ndarray, hidden: int = 32, batchnorm: bool = False) -> Any:
        import tensorflow as tf

        layers = tf.keras.layers
        inputs = tf.keras.Input((d,))
        h = _keras_standardise(x)(inputs)
        h = layers.Dense(hidden)(h)
        if batchnorm:
            h = layers.Dropout(0.1)(layers.BatchNormalization()(h))
        h = layers.ReLU()(h)
        h = layers.Dense(hidden, activation="relu")(h)
        return tf.keras.Model(inputs, layers.Dense(k, activation="softmax")(h))

    def digits_net(self) -> Any:
        import tensorflow as tf

        layers = tf.keras.layers
        return tf.keras.Sequential([tf.keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(64, activation="relu"),
                                    layers.Dense(10, activation="softmax")])

    def train(self, model: Any, X: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0, lr: float = 3e-3) -> Any:
        import tensorflow as tf

        # seeded re-initialisation, layer by layer (no global TensorFlow seed)
        seeds = np.random.default_rng(seed)
        for layer in model.layers:
            for attr in ("kernel", "bias"):
                var = getattr(layer, attr, None)
                if var is None:
                    continue
                if attr == "bias":
                    var.assign(tf.zeros_like(var))
                else:
                    init = tf.keras.initializers.GlorotUniform(seed=int(seeds.integers(2**31 - 1)))
                    var.assign(init(var.shape))
        optimiser = tf.keras.optimizers.Adam(learning_rate=lr)

        @tf.function
        def step(xb: Any, yb: Any) -> None:
            with tf.GradientTape() as tape:
                proba = model(xb, training=True)
                loss = -tf.reduce_mean(tf.math.log(tf.gather(proba, yb, batch_dims=1) + 1e-7))
            optimiser.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

        xt, yt = tf.constant(X, tf.float32), tf.constant(y, tf.int64)
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            for batch in np.array_split(rng.permutation(len(X)), max(1, len(X) // 64)):
                step(tf.gather(xt, batch), tf.gather(yt, batch))
        return model

    def numpy_fn(self, model: Any) -> Callable[[np.ndarray], np.ndarray]:
        def predict(x: np.ndarray) -> np.ndarray:
            if not isinstance(x, np.ndarray):
                raise TypeError(f"the predictor received {type(x).__name__}, not a numpy array")
            out: np.ndarray = model(x.astype(np.float32), training=False).numpy()
            return out

        return predict

    def channels_first(self, model: Any) -> Any:
        import tensorflow as tf

        class ChannelsFirst(tf.keras.Model):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
                return self.inner(tf.transpose(inputs, (0, 2, 3, 1)), training=training)

        return ChannelsFirst(model)

    def exploding_discriminator(self, n_features: int) -> Any:
        import tensorflow as tf

        class Exploding(tf.keras.Model):
            def __init__(self) -> None:
                super().__init__()
                self.linear = tf.keras.layers.Dense(1, kernel_initializer=tf.keras.initializers.GlorotUniform(seed=1))
                # a variable, not a Python counter: the call runs inside compiled training steps
                self.calls = tf.Variable(tf.constant(0, dtype=tf.int64), trainable=False)

            def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
                self.calls.assign_add(1)
                out = self.linear(inputs)
                return tf.where(self.calls > 10, out * float("nan"), out)

        return Exploding()

    def layer_types(self, net: Any) -> Set[str]:
        return {type(layer).__name__.lower() for layer in net.submodules} | {type(net).__name__.lower()}

    def state(self, model: Any) -> Dict[str, Any]:
        return {"weights": [w.numpy().copy() for w in model.weights],
                "names": [w.name for w in model.weights],
                "trainable": [layer.trainable for layer in model.submodules if hasattr(layer, "trainable")]
                + [model.trainable]}

    def seed_globals(self, seed: int) -> None:
        import tensorflow as tf

        super().seed_globals(seed)
        tf.random.set_seed(seed)

    def draw_globals(self) -> List[float]:
        import tensorflow as tf

        return super().draw_globals() + tf.random.uniform((3,)).numpy().tolist()


def _keras_standardise(x: np.ndarray) -> Any:
    import tensorflow as tf

    mean = x.mean(0).astype(np.float32)
    std = np.where(x.std(0) > 0, x.std(0), 1.0).astype(np.float32)

    class Standardise(tf.keras.layers.Layer):
        def build(self, input_shape: Any) -> None:
            self.mean = self.add_weight(name="mean", shape=mean.shape, trainable=False,
                                        initializer=tf.keras.initializers.Constant(mean))
            self.std = self.add_weight(name="std", shape=std.shape, trainable=False,
                                       initializer=tf.keras.initializers.Constant(std))

        def call(self, v: Any) -> Any:
            return (v - self.mean) / self.std

    return Standardise()


FRAMEWORKS = {"pytorch": TorchFramework, "tensorflow": KerasFramework}
"""The helper class of each backend, by the backend's name."""


def changed_entries(before: Dict[str, Any], after: Dict[str, Any]) -> List[str]:
    """Names of the entries of two :meth:`Framework.state` snapshots that differ."""
    changed = []
    for key in before:
        a, b = before[key], after[key]
        if isinstance(a, dict):
            changed += [f"{key}/{k}" for k in a if not np.array_equal(a[k], b[k])]
        elif len(a) != len(b) or any(not np.array_equal(u, v) for u, v in zip(a, b)):
            changed.append(key)
    return changed


def free_ports(n: int) -> List[int]:
    """``n`` distinct TCP ports on 127.0.0.1 that were free a moment ago (for servers started by tests)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def stop_process_group(process: "subprocess.Popen[bytes]", timeout: float = 30) -> None:
    """End a process started with ``start_new_session=True`` and the processes it started (POSIX).

    The group is resumed (in case it was stopped) and sent SIGTERM; SIGKILL follows when it has not
    ended after ``timeout`` seconds. A process that has already ended is left alone.
    """
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGCONT)
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
