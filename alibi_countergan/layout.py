"""How an instance's shape maps to feature vectors or images."""

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

_CHANNEL_COUNTS = (1, 3, 4)


@dataclass(frozen=True)
class ImageLayout:
    """An image instance: its size and where the channels are in the flattened features.

    Attributes
    ----------
    height, width, channels
        Image size.
    channels_last
        True for ``(H, W, C)`` (and ``(H, W)``) instances, False for ``(C, H, W)``.
    """

    height: int
    width: int
    channels: int
    channels_last: bool

    def channel_index(self) -> np.ndarray:
        """For each flattened feature, the channel it belongs to."""
        n = self.height * self.width * self.channels
        if self.channels_last:
            return np.arange(n) % self.channels
        return np.arange(n) // (self.height * self.width)


def detect_layout(feature_shape: Tuple[int, ...], data_format: Optional[str]) -> Optional[ImageLayout]:
    """The image layout of ``feature_shape``, or None for a feature vector.

    Parameters
    ----------
    feature_shape
        Shape of one instance (without the batch axis).
    data_format
        ``'channels_last'``, ``'channels_first'`` or None to infer it: a 3-D shape whose last axis has
        1, 3 or 4 entries is channels-last, else one whose first axis has is channels-first.

    Raises
    ------
    ValueError
        When the layout cannot be inferred or the shape is not supported by the default networks.
    """
    if data_format not in (None, "channels_last", "channels_first"):
        raise ValueError(f"data_format={data_format!r}: use 'channels_last', 'channels_first' or None.")
    if len(feature_shape) == 1:
        return None
    if len(feature_shape) == 2:
        height, width = feature_shape
        return ImageLayout(height, width, 1, True)
    if len(feature_shape) == 3:
        if data_format is None:
            if feature_shape[-1] in _CHANNEL_COUNTS:
                data_format = "channels_last"
            elif feature_shape[0] in _CHANNEL_COUNTS:
                data_format = "channels_first"
            else:
                raise ValueError(f"Cannot tell the channel axis of instances shaped {feature_shape}; pass "
                                 f"data_format='channels_last' or 'channels_first'.")
        if data_format == "channels_last":
            return ImageLayout(feature_shape[0], feature_shape[1], feature_shape[2], True)
        return ImageLayout(feature_shape[1], feature_shape[2], feature_shape[0], False)
    raise ValueError(f"The default networks handle feature vectors and images (2-D or 3-D instances), not "
                     f"instances shaped {feature_shape}; pass your own generator and discriminator.")
