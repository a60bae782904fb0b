"""PyTorch backend: default networks, one discriminator step, one generator step, forward pass, weights."""

import contextlib
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from alibi_countergan.backends.base import Backend, NetworkSpec, TrainingSpec, WeightFileError, brief_error
from alibi_countergan.constraints import SpaceTensors
from alibi_countergan.layout import ImageLayout
from alibi_countergan.value import Batch, discriminator_objective, generator_objective

_LEAK = 0.2


class TorchOps:
    """:class:`alibi_countergan.ops.Ops` on torch tensors."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def constant(self, value: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(value, dtype=np.float32), device=self.device)

    def softplus(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x)

    def log(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)

    def relu(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)

    def abs(self, x: torch.Tensor) -> torch.Tensor:
        return torch.abs(x)

    def square(self, x: torch.Tensor) -> torch.Tensor:
        return torch.square(x)

    def minimum(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.minimum(a, b)

    def maximum(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.maximum(a, b)

    def mean(self, x: torch.Tensor, axis: Optional[int] = None) -> torch.Tensor:
        return x.mean() if axis is None else x.mean(dim=axis)

    def sum(self, x: torch.Tensor, axis: Optional[int] = None) -> torch.Tensor:
        return x.sum() if axis is None else x.sum(dim=axis)

    def softmax(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)

    def one_hot_argmax(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(x.argmax(dim=-1), x.shape[-1]).to(x.dtype)

    def nearest(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return grid[torch.abs(x - grid[None, :]).argmin(dim=-1)][:, None]

    def positive(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).to(x.dtype)

    def stop_gradient(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach()

    def concat(self, xs: Sequence[torch.Tensor], axis: int = -1) -> torch.Tensor:
        return torch.cat(list(xs), dim=axis)

    def take_columns(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return x.gather(1, index[:, None])[:, 0]


# ---------------------------------------------------------------------------------------------
# Default networks. All take and return flat features; image networks reshape inside.
# ---------------------------------------------------------------------------------------------


class MLPGenerator(nn.Module):
    """Residual generator for feature vectors: ``[x_std, mask, onehot(t)] -> u``."""

    def __init__(self, n_features: int, n_classes: int, hidden: Sequence[int] = (128, 128)) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        width = 2 * n_features + n_classes
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(_LEAK)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_features)
        _small_init(self.head)

    def forward(self, x_std: torch.Tensor, onehot: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(torch.cat([x_std, mask, onehot], dim=1)))


class MLPDiscriminator(nn.Module):
    """Discriminator for feature vectors: ``x_std -> logits`` (one per output)."""

    def __init__(self, n_features: int, n_outputs: int, hidden: Sequence[int] = (128, 128)) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(_LEAK)]
            width = h
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x_std: torch.Tensor) -> torch.Tensor:
        return self.net(x_std)


class _Layout(nn.Module):
    """Turns flat features into NCHW images and back."""

    def __init__(self, image: ImageLayout) -> None:
        super().__init__()
        self.image = image
        h, w, c = image.height, image.width, image.channels
        self.user_shape = (h, w, c) if image.channels_last else (c, h, w)

    def to_image(self, flat: torch.Tensor) -> torch.Tensor:
        x = flat.reshape((-1,) + self.user_shape)
        return x.permute(0, 3, 1, 2) if self.image.channels_last else x

    def to_flat(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 2, 3, 1) if self.image.channels_last else image
        return x.reshape(image.shape[0], -1)


class ConvGenerator(nn.Module):
    """Residual generator for images: a small encoder-decoder (two stride-2 stages each way).

    Inputs are the standardised image, the mutability mask and the target as constant planes;
    the target is added again at the bottleneck. About 0.1M weights for MNIST, against the
    paper's 20M, and roughly 1.5 GFLOP per batch of 256 MNIST images.
    """

    def __init__(self, image: ImageLayout, n_classes: int, width: int = 32) -> None:
        super().__init__()
        self.layout = _Layout(image)
        c = image.channels
        self.encode = nn.Sequential(
            nn.Conv2d(2 * c + n_classes, width, 4, stride=2, padding=1), nn.LeakyReLU(_LEAK),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(_LEAK),
        )
        self.target_embedding = nn.Linear(n_classes, 2 * width)
        self.up_1 = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1)
        self.up_2 = nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1)
        self.head = nn.Conv2d(width // 2, c, 3, padding=1)
        self.act = nn.LeakyReLU(_LEAK)
        _small_init(self.head)

    def forward(self, x_std: torch.Tensor, onehot: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        image = self.layout.to_image(x_std)
        height, width = image.shape[2], image.shape[3]
        planes = onehot[:, :, None, None].expand(-1, -1, height, width)
        h = torch.cat([image, self.layout.to_image(mask), planes], dim=1)
        # zeros below and to the right up to multiples of 4, so that any image size comes back whole
        h = self.encode(nn.functional.pad(h, (0, -width % 4, 0, -height % 4)))
        h = h + self.target_embedding(onehot)[:, :, None, None]
        h = self.act(self.up_1(h))[:, :, : (height + 1) // 2, : (width + 1) // 2]
        h = self.act(self.up_2(h))[:, :, :height, :width]
        return self.layout.to_flat(self.head(h))


class ConvDiscriminator(nn.Module):
    """Discriminator for images: three stride-2 convolutions and a linear head."""

    def __init__(self, image: ImageLayout, n_outputs: int, width: int = 64) -> None:
        super().__init__()
        self.layout = _Layout(image)
        self.net = nn.Sequential(
            nn.Conv2d(image.channels, width, 3, stride=2, padding=1), nn.LeakyReLU(_LEAK),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.LeakyReLU(_LEAK),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.LeakyReLU(_LEAK),
            nn.Flatten(),
        )
        h, w = image.height, image.width
        for _ in range(3):
            h, w = (h + 1) // 2, (w + 1) // 2
        self.head = nn.Linear(width * h * w, n_outputs)

    def forward(self, x_std: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(self.layout.to_image(x_std)))


def _small_init(layer: nn.Module) -> None:
    """Start the generator near the identity counterfactual (residuals close to zero)."""
    with torch.no_grad():
        layer.weight.mul_(0.1)  # type: ignore[operator]
        layer.bias.zero_()  # type: ignore[operator]


def default_networks(spec: NetworkSpec) -> "tuple[nn.Module, nn.Module]":
    """The default generator and discriminator for ``spec`` (MLPs for vectors, CNNs for images)."""
    if spec.image is None:
        return (MLPGenerator(spec.n_features, spec.n_classes),
                MLPDiscriminator(spec.n_features, spec.discriminator_outputs))
    return (ConvGenerator(spec.image, spec.n_classes), ConvDiscriminator(spec.image, spec.discriminator_outputs))


_MODE_LOCK = threading.Lock()


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode and give every submodule its own training flag back afterwards.

    A model already in eval mode (the usual case for a deployed classifier) is not touched at all,
    so concurrent calls from several threads never race on its flags; a model with training
    submodules is switched and restored under a lock.
    """
    if not any(m.training for m in model.modules()):
        yield
        return
    with _MODE_LOCK:
        flags = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            yield
        finally:
            for m, flag in flags:
                m.training = flag


@contextlib.contextmanager
def training_mode(*models: nn.Module) -> Iterator[None]:
    """Our own networks train in train mode and rest in eval mode, so ``generate`` never switches them."""
    for model in models:
        model.train()
    try:
        yield
    finally:
        for model in models:
            model.eval()


def _device_of(model: Any) -> torch.device:
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device("cpu")


class TorchBackend:
    """The PyTorch implementation of :class:`alibi_countergan.backends.base.Backend`."""

    name = "pytorch"

    def __init__(self) -> None:
        self.generator: Optional[nn.Module] = None
        self.discriminator: Optional[nn.Module] = None
        self.predictor: Optional[nn.Module] = None

    def build(self, network: NetworkSpec, training: TrainingSpec, predictor: Any, seed: int,
              generator: Any = None, discriminator: Any = None) -> None:
        for net, what in ((generator, "generator"), (discriminator, "discriminator")):
            if net is not None and not isinstance(net, nn.Module):
                raise ValueError(f"The pytorch backend needs the {what} to be a torch.nn.Module, "
                                 f"got {type(net).__name__}.")
        self.network, self.training = network, training
        self.predictor = predictor
        self.device = _device_of(predictor)
        self.ops = TorchOps(self.device)
        self.space: SpaceTensors = training.space.tensors(self.ops)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            default_g, default_d = default_networks(network)
        self.generator = (generator if generator is not None else default_g).to(self.device)
        self.discriminator = (discriminator if discriminator is not None else default_d).to(self.device)
        self.generator.eval()
        self.discriminator.eval()
        betas = (training.beta_1, 0.999)
        self.g_params = [p for p in self.generator.parameters() if p.requires_grad]
        self.d_params = [p for p in self.discriminator.parameters() if p.requires_grad]
        self.g_optimizer = torch.optim.Adam(self.g_params, lr=training.learning_rate_generator, betas=betas)
        self.d_optimizer = torch.optim.Adam(self.d_params, lr=training.learning_rate_discriminator, betas=betas)
        self._classifier: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
        if training.white_box:
            shape = (-1,) + network.feature_shape
            self._classifier = lambda x: self.predictor(x.reshape(shape))  # type: ignore[misc]

    def set_predictor(self, predictor: Any) -> None:
        """Replace the white-box predictor (the generator step calls it through ``self.predictor``)."""
        self.predictor = predictor

    def _tensors(self, batch: "Batch[np.ndarray]") -> "Batch[torch.Tensor]":
        return batch.map(lambda a: torch.from_numpy(a).to(self.device))

    def _apply(self, loss: torch.Tensor, params: List[nn.Parameter], optimizer: torch.optim.Optimizer) -> None:
        # autograd.grad touches only `params`: the predictor's .grad fields are never written
        grads = torch.autograd.grad(loss, params)
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()

    def discriminator_step(self, batch: "Batch[np.ndarray]") -> Dict[str, float]:
        assert self.generator is not None and self.discriminator is not None
        t = self._tensors(batch)
        with training_mode(self.generator, self.discriminator):
            loss, parts = discriminator_objective(self.ops, self.generator, self.discriminator, t, self.space,
                                                  residual=self.training.residual)
        self._apply(loss, self.d_params, self.d_optimizer)
        return {k: float(v.detach()) for k, v in parts.items()}

    def generator_step(self, batch: "Batch[np.ndarray]") -> Dict[str, float]:
        assert self.generator is not None and self.discriminator is not None
        t = self._tensors(batch)
        context = evaluation_mode(self.predictor) if self._classifier is not None and self.predictor is not None \
            else contextlib.nullcontext()
        with context, training_mode(self.generator, self.discriminator):
            loss, parts = generator_objective(self.ops, self.generator, self.discriminator, self._classifier, t,
                                              self.space, self.training.weights, residual=self.training.residual)
        self._apply(loss, self.g_params, self.g_optimizer)
        return {k: float(v.detach()) for k, v in parts.items()}

    def generate(self, x_std: np.ndarray, target_onehot: np.ndarray, mask: np.ndarray) -> np.ndarray:
        assert self.generator is not None
        with torch.inference_mode():
            u = self.generator(torch.from_numpy(x_std).to(self.device),
                               torch.from_numpy(target_onehot).to(self.device),
                               torch.from_numpy(mask).to(self.device))
        return u.cpu().numpy()

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), evaluation_mode(model):
            out = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(_device_of(model)))
        return out.detach().cpu().numpy()

    def get_weights(self) -> Dict[str, np.ndarray]:
        assert self.generator is not None and self.discriminator is not None
        out = {}
        for prefix, net in (("generator", self.generator), ("discriminator", self.discriminator)):
            for key, value in net.state_dict().items():
                out[f"{prefix}/{key}"] = value.detach().cpu().numpy().copy()
        return out

    def set_weights(self, weights: Dict[str, np.ndarray]) -> None:
        assert self.generator is not None and self.discriminator is not None
        for prefix, net in (("generator", self.generator), ("discriminator", self.discriminator)):
            state = {k[len(prefix) + 1:]: torch.from_numpy(np.asarray(v)) for k, v in weights.items()
                     if k.startswith(prefix + "/")}
            net.load_state_dict(state)

    # weight files (alibi_countergan.backends.base.WeightFiles): one state_dict file per network

    weight_format = "torch.state_dict"

    def write_weights(self, weights: Mapping[str, np.ndarray], directory: Path) -> List[str]:
        """Write ``generator.pt`` and ``discriminator.pt``: each a ``state_dict`` of plain tensors (``torch.save``).

        Each file loads into the network with ``net.load_state_dict(torch.load(file, weights_only=True))``.
        """
        stray = [k for k in weights if k.split("/", 1)[0] not in _NETWORKS]
        if stray:
            raise ValueError(f"Weights outside the generator and the discriminator cannot be saved: {stray[:5]}.")
        files = []
        for prefix in _NETWORKS:
            state = {k[len(prefix) + 1:]: torch.tensor(np.asarray(v)) for k, v in weights.items()
                     if k.startswith(prefix + "/")}
            torch.save(state, Path(directory) / f"{prefix}.pt")
            files.append(f"{prefix}.pt")
        return files

    def read_weights(self, directory: Path, files: Sequence[str]) -> Dict[str, np.ndarray]:
        """Inverse of :meth:`write_weights`; reads with ``weights_only=True`` (no code runs while reading)."""
        out: Dict[str, np.ndarray] = {}
        for prefix in _NETWORKS:
            file = Path(directory) / f"{prefix}.pt"
            if f"{prefix}.pt" not in files:
                raise ValueError(f"The saved weights list no {prefix}.pt.")
            try:
                state = torch.load(file, map_location="cpu", weights_only=True)
            except Exception as err:  # truncated, empty, random bytes, a pickle of other objects: all one error
                raise WeightFileError(file, f"torch.load(weights_only=True) failed ({brief_error(err)})") from None
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise WeightFileError(file, f"it holds a {type(state).__name__}, not a state_dict of tensors")
            out.update({f"{prefix}/{k}": v.numpy() for k, v in state.items()})
        return out


_NETWORKS = ("generator", "discriminator")


def create_backend() -> Backend:
    """A fresh, unbuilt PyTorch backend (typed as the protocol, so mypy checks that it is one)."""
    return TorchBackend()
