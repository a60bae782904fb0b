"""PyTorch backend: one discriminator step, one generator step, forward pass, weights.

The array operations are in :mod:`alibi_countergan.backends.torch_ops`, the default networks in
:mod:`alibi_countergan.backends.torch_networks`.
"""
import contextlib
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from alibi_countergan.backends.base import Backend, NetworkSpec, TrainingSpec, WeightFileError, brief_error
from alibi_countergan.backends.torch_networks import (
    ConvDiscriminator,
    ConvGenerator,
    MLPDiscriminator,
    MLPGenerator,
    PlainGANGenerator,
    build_networks,
    default_networks,
)
from alibi_countergan.backends.torch_ops import TorchOps
from alibi_countergan.constraints import SpaceTensors
from alibi_countergan.value import Batch, discriminator_objective, generator_objective

__all__ = ["TorchBackend", "TorchOps", "MLPGenerator", "MLPDiscriminator", "ConvGenerator", "ConvDiscriminator",
           "PlainGANGenerator", "default_networks", "evaluation_mode", "training_mode", "create_backend"]



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
            generator, discriminator = build_networks(network, generator, discriminator)
        self.generator, self.discriminator = generator.to(self.device), discriminator.to(self.device)
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
            loss, parts = discriminator_objective(self.ops, self.generator, self.discriminator, t, self.space)
        self._apply(loss, self.d_params, self.d_optimizer)
        return {k: float(v.detach()) for k, v in parts.items()}

    def generator_step(self, batch: "Batch[np.ndarray]") -> Dict[str, float]:
        assert self.generator is not None and self.discriminator is not None
        t = self._tensors(batch)
        context = evaluation_mode(self.predictor) if self._classifier is not None and self.predictor is not None \
            else contextlib.nullcontext()
        with context, training_mode(self.generator, self.discriminator):
            loss, parts = generator_objective(self.ops, self.generator, self.discriminator, self._classifier, t,
                                              self.space, self.training.weights)
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
