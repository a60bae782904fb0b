"""The one batch record: what the sampler builds is what the record's specs declare, field by field."""

import dataclasses

import numpy as np
import pytest

from alibi_countergan.features import build_feature_space
from alibi_countergan.training import BatchSampler
from alibi_countergan.value import Batch


def _space(X):
    return build_feature_space(X, channel_index=None, feature_shape=X.shape[1:], feature_range=None, immutable=[],
                               monotone={}, groups=(), grids={})


@pytest.mark.parametrize("white_box", [True, False], ids=["white-box", "black-box"])
def test_sampled_batches_have_the_dtypes_and_shapes_the_record_declares(compas, white_box):
    _, X_train, _, y_train, _ = compas
    space = _space(X_train)
    x = X_train.astype(np.float32)
    x_std = ((x - space.center) / space.spread).astype(np.float32)
    proba = np.eye(2, dtype=np.float32)[y_train.astype(int)] * 0.8 + 0.1  # a confident predictor of the labels
    sampler = BatchSampler(x, x_std, proba, space, white_box, 64, np.random.default_rng(0))
    batch = sampler.sample()
    outputs = 1 if white_box else 2
    specs = Batch.specs(x.shape[1], 2, outputs)
    assert [f.name for f in dataclasses.fields(Batch)] == list(specs.as_dict())
    for name, spec in specs.as_dict().items():
        array = getattr(batch, name)
        assert spec.name == name
        assert array.dtype == spec.dtype, name
        assert array.ndim == len(spec.shape) and array.shape[0] == 64, name
        assert array.shape[1:] == spec.shape[1:], name


def test_map_converts_every_field_and_keeps_the_names(compas):
    _, X_train, _, y_train, _ = compas
    space = _space(X_train)
    x = X_train.astype(np.float32)
    proba = np.full((len(x), 2), 0.5, dtype=np.float32)
    batch = BatchSampler(x, x, proba, space, False, 16, np.random.default_rng(1)).sample()
    shapes = batch.map(np.shape)
    assert shapes.as_dict() == {name: np.shape(a) for name, a in batch.as_dict().items()}
    copied = batch.map(np.copy)
    for name, array in batch.as_dict().items():
        np.testing.assert_array_equal(getattr(copied, name), array)
        assert getattr(copied, name) is not array
