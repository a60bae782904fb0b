"""The default PyTorch networks: MLPs for feature vectors, CNNs for images; all take and return flat features."""
from typing import Any, List, Optional, Sequence, Tuple

import torch
from torch import nn

from alibi_countergan.backends.base import NetworkSpec
from alibi_countergan.layout import ImageLayout

__all__ = ["MLPGenerator", "MLPDiscriminator", "ConvGenerator", "ConvDiscriminator", "PlainGANGenerator",
           "default_networks", "build_networks"]

_LEAK = 0.2

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


class PlainGANGenerator(nn.Module):
    """A generator that outputs the whole counterfactual, presented as a residual: ``G(x_std, t, mask) - x_std``.

    The paper's plain "GAN" baseline (``NetworkSpec.plain_gan``, the explainer's ``residual=False``).
    It adds no weights, and its ``state_dict`` is the wrapped network's, under the same keys, so its
    weights are saved and loaded as the wrapped network's would be.

    Parameters
    ----------
    generator
        The network wrapped (the default generator or the user's).
    """

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x_std: torch.Tensor, onehot: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.generator(x_std, onehot, mask) - x_std

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped network's ``state_dict`` (the same keys, no prefix)."""
        return self.generator.state_dict(*args, **kwargs)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped network's ``load_state_dict`` (for what :meth:`state_dict` returns)."""
        return self.generator.load_state_dict(*args, **kwargs)


def build_networks(spec: NetworkSpec, generator: Optional[nn.Module] = None,
                   discriminator: Optional[nn.Module] = None) -> Tuple[nn.Module, nn.Module]:
    """The generator and discriminator a backend trains: the given ones, or the defaults for ``spec``.

    The defaults are built either way (so the given networks never change the random draws of the
    other's default). With ``spec.plain_gan`` the generator is wrapped in a :class:`PlainGANGenerator`.
    """
    default_g, default_d = default_networks(spec)
    generator = default_g if generator is None else generator
    discriminator = default_d if discriminator is None else discriminator
    return (PlainGANGenerator(generator) if spec.plain_gan else generator), discriminator
