"""Actionability constraints are never violated: property-based checks of the projection, and end to end."""

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from alibi_countergan import CounteRGAN
from alibi_countergan.backends.pytorch import TorchOps
from alibi_countergan.constraints import project
from alibi_countergan.diverse import single_variable_moves
from alibi_countergan.fairness import fairness_probe
from alibi_countergan.features import build_feature_space
from alibi_countergan.metrics import violations
from alibi_countergan.ops import NUMPY_OPS
from alibi_countergan.refine import Criterion, Refiner, one_row_plan

OPS = {"numpy": NUMPY_OPS, "pytorch": TorchOps(torch.device("cpu"))}


@st.composite
def constrained_problems(draw):
    """A random feature layout with random constraints, data, generator outputs and per-row masks."""
    n_numeric = draw(st.integers(0, 6))
    group_sizes = draw(st.lists(st.integers(2, 4), max_size=3))
    n_ordinal = draw(st.integers(0, 2))
    if n_numeric + len(group_sizes) + n_ordinal == 0:
        n_numeric = 1
    d = n_numeric + n_ordinal + sum(group_sizes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = draw(st.integers(1, 12))
    n_fit = 30
    scale = rng.uniform(0.1, 100, size=n_numeric)
    numeric_fit = rng.normal(size=(n_fit, n_numeric)) * scale
    grids = {n_numeric + k: np.sort(rng.choice(np.arange(-5, 15), size=rng.integers(2, 6), replace=False))
             .astype(np.float32) for k in range(n_ordinal)}
    ordinal_fit = np.stack([rng.choice(g, size=n_fit) for g in grids.values()], axis=1) if grids else \
        np.zeros((n_fit, 0))
    groups, blocks, start = [], [], n_numeric + n_ordinal
    for size in group_sizes:
        groups.append((start, start + size))
        blocks.append(np.eye(size)[rng.integers(0, size, n_fit)])
        start += size
    fit = np.concatenate([numeric_fit, ordinal_fit] + blocks, axis=1).astype(np.float32)

    immutable = [j for j in range(d) if rng.random() < 0.3]
    monotone = {j: int(rng.choice([-1, 1])) for j in range(n_numeric + n_ordinal)
                if j not in immutable and rng.random() < 0.4}
    feature_range = None
    if draw(st.booleans()):
        lower = fit.min(0) - rng.uniform(0, 1, d)
        upper = fit.max(0) + rng.uniform(0, 1, d)
        feature_range = (lower, upper)
    space = build_feature_space(fit, channel_index=None, feature_shape=(d,), feature_range=feature_range,
                                immutable=immutable, monotone=monotone, groups=tuple(groups), grids=grids,
                                min_change=draw(st.sampled_from([0.0, 0.1, 0.5])))
    # instances: some from the fit data, some perturbed outside the range (numeric columns only)
    x = fit[rng.integers(0, n_fit, rows)].copy()
    x[:, :n_numeric] += rng.normal(size=(rows, n_numeric)) * scale * rng.choice([0, 3], size=(rows, 1))
    u = (rng.normal(size=(rows, d)) * rng.choice([0.01, 1, 30], size=(rows, 1))).astype(np.float32)
    masks = np.broadcast_to(space.mutable, (rows, d)).copy()
    masks *= (rng.random((rows, d)) > draw(st.sampled_from([0.0, 0.3, 1.0]))).astype(np.float32)
    for s, e in groups:
        masks[:, s:e] = masks[:, s:e].min(axis=1, keepdims=True)
    return space, x.astype(np.float32), u, masks


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=constrained_problems(), ops_name=st.sampled_from(sorted(OPS)), hard=st.booleans())
def test_projection_never_violates_a_constraint(problem, ops_name, hard):
    space, x, u, masks = problem
    ops = OPS[ops_name]
    tensors = space.tensors(ops)
    if ops_name == "numpy":
        cf = project(ops, x, u, masks, tensors, hard=hard)
    else:
        t = torch.from_numpy
        cf = project(ops, t(x), t(u).requires_grad_(not hard), t(masks), tensors, hard=hard).detach().numpy()
    counts = violations(x, cf, space, mask=masks, atol=1e-3 * (1 + np.abs(x)))
    assert all(int(v.sum()) == 0 for v in counts.values()), {k: v.tolist() for k, v in counts.items()}
    frozen = masks == 0
    np.testing.assert_array_equal(cf[frozen], x[frozen])  # bit-exact for frozen features


def test_projection_is_differentiable_through_one_hot_groups_in_training():
    fit = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    space = build_feature_space(fit, channel_index=None, feature_shape=(3,), feature_range=None, immutable=[],
                                monotone={}, groups=((0, 3),), grids={})
    ops = OPS["pytorch"]
    u = torch.zeros(1, 3, requires_grad=True)
    cf = project(ops, torch.from_numpy(fit[:1]), u, torch.ones(1, 3), space.tensors(ops), hard=False)
    assert torch.equal(cf.detach(), torch.tensor([[1.0, 0.0, 0.0]]))
    (cf[:, 1] * 1.0).sum().backward()
    assert u.grad is not None and u.grad[0, 1] > 0  # raising category 1's logit raises its value


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=constrained_problems(), pick=st.integers(0, 2**16 - 1))
def test_projecting_the_columns_of_some_variables_alone_gives_the_same_values(problem, pick):
    # the refinement's candidates of one row change a few variables; it projects their columns alone
    space, x, u, masks = problem
    variables = space.variables
    chosen = ((pick >> np.arange(variables.n)) & 1).astype(bool)[variables.of_column]
    masks = masks * chosen  # nothing outside the chosen variables may change
    whole = project(NUMPY_OPS, x, u, masks, space.tensors(NUMPY_OPS), hard=True)
    np.testing.assert_array_equal(whole[:, ~chosen], x[:, ~chosen])
    cols = np.flatnonzero(chosen)
    restricted = space.tensors_on(np.float32, tuple(cols.tolist()))
    assert restricted is space.tensors_on(np.float32, tuple(cols.tolist()))  # built once
    part = project(NUMPY_OPS, x[:, cols], u[:, cols], masks[:, cols], restricted, hard=True)
    np.testing.assert_array_equal(part, whole[:, cols])


def _no_predictor(x):
    raise AssertionError("building candidates calls no predictor")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(problem=constrained_problems(), seed=st.integers(0, 2**16 - 1))
def test_one_rows_candidates_projected_once_per_scale_are_the_general_builds(problem, seed):
    # a single row's search projects each distinct scale once and picks each candidate's kept variables from it
    space, x, u, masks = problem
    tensors = space.tensors_for(np.float32)
    refiner = Refiner(space, tensors, _no_predictor, Criterion())
    cf = project(NUMPY_OPS, x[:1], u[:1], masks[:1], tensors, hard=True)[0]
    changed = refiner.variable_costs(x[:1], cf[None])[0] > 0
    assume(changed.any())
    rng = np.random.default_rng(seed)
    n = 60
    keep = (rng.random((n, space.variables.n)) < 0.6) & changed
    scale = rng.choice(np.r_[np.arange(1, 49) / 48, 1.5, 2.0, 3.0], n)
    columns = np.flatnonzero(changed[space.variables.of_column])
    plan = one_row_plan(keep, scale, columns, space.variables.of_column[columns], x.shape[1])
    one = refiner._build_one(x[0], cf, masks[0], plan)
    rows = np.zeros(n, dtype=int)
    general = refiner.build(x[rows], cf[None][rows], masks[rows], scale,
                            keep[:, space.variables.of_column].astype(np.float32))
    np.testing.assert_array_equal(one, general)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(problem=constrained_problems(), seed=st.integers(0, 2**16 - 1), grow=st.booleans(), beyond=st.booleans())
def test_a_single_rows_proposals_planned_one_by_one_are_the_batch_plan(problem, seed, grow, beyond):
    # a single row's proposals (one per class for 'other') take their cached plans one after the other: the same
    # candidates, in the same order, as the batch path's templates
    space, _, _, _ = problem
    refiner = Refiner(space, space.tensors_for(np.float32), _no_predictor, Criterion())
    changed = np.random.default_rng(seed).random((3, space.variables.n)) < 0.5
    grow = grow and not beyond  # the search never asks for both
    assume((changed.sum(axis=1) >= 1).sum() >= 2)  # two proposals searched: the batch path builds templates
    batch = refiner._plan(changed, 10 ** 9, grow, beyond)
    one_by_one = refiner._plan(changed, 10 ** 9, grow, beyond, each=True)
    assert (batch is None) == (one_by_one is None)
    assume(batch is not None)
    assert batch[4] is None
    for general, each in zip(batch[:4], one_by_one[:4]):
        np.testing.assert_array_equal(general, each)
    assert [p for p, _ in one_by_one[4]] == sorted(set(batch[0].tolist()))
    budget = len(batch[1]) - 1  # one candidate too many: neither path plans
    assert refiner._plan(changed, budget, grow, beyond) is None
    assert refiner._plan(changed, budget, grow, beyond, each=True) is None


def _moves_one_by_one(x, mask, refiner):
    """single_variable_moves as it was first written: each move built by Refiner.build on whole rows."""
    t, f = refiner.tensors, x.shape[1]
    grid = np.arange(1, 49, dtype=np.float64) / 48
    free, numeric = mask > 0, np.broadcast_to(t.numeric > 0, x.shape)
    out = []
    for end in (np.broadcast_to(t.lower, x.shape), np.broadcast_to(t.upper, x.shape)):
        for r, c in zip(*np.nonzero(free & numeric & (end != x))):
            point, keep = x[r].copy(), np.zeros(f, dtype=x.dtype)
            point[c], keep[c] = end[r, c], 1
            out.append(refiner.build(np.repeat(x[r:r + 1], 48, 0), np.repeat(point[None], 48, 0),
                                     np.repeat(mask[r:r + 1], 48, 0), grid, np.repeat(keep[None], 48, 0)))
    for start, stop in t.groups:
        for r in np.flatnonzero(free[:, start]):
            for category in range(stop - start):
                point, keep = x[r].copy(), np.zeros(f, dtype=x.dtype)
                point[start:stop], keep[start:stop] = np.eye(stop - start)[category], 1
                if np.any(point != x[r]):
                    out.append(refiner.build(x[r:r + 1], point[None], mask[r:r + 1], np.ones(1), keep[None]))
    return np.concatenate(out) if out else np.zeros((0, f), dtype=x.dtype)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=constrained_problems())
def test_single_variable_moves_projected_on_their_columns_are_the_whole_row_builds(problem):
    # the alternatives' single-variable moves are built on the moved columns alone; each is the row that
    # Refiner.build makes of the original with that variable moved (every constraint held)
    space, x, _, masks = problem
    refiner = Refiner(space, space.tensors_for(np.float32), _no_predictor, Criterion())
    before = x.copy(), masks.copy()
    row, candidates, _ = single_variable_moves(x, masks, refiner)
    np.testing.assert_array_equal(x, before[0])  # inputs untouched
    np.testing.assert_array_equal(masks, before[1])
    reference = _moves_one_by_one(x, masks, refiner)
    assert len(row) == len(candidates) == len(reference)
    np.testing.assert_array_equal(candidates, reference)


@pytest.fixture(scope="module")
def compas_constrained(compas, compas_model):
    data, X_train, _, _, _ = compas
    immutable = ["age", "sex=Female"] + [n for n in data.feature_names if n.startswith("race=")]
    return CounteRGAN(compas_model, (1, X_train.shape[1]), feature_names=data.feature_names, cat_vars=data.cat_vars,
                      immutable_features=immutable, monotone={"priors_count": "decreasing"},
                      ordinal_features=["priors_count", "juv_fel_count"], train_steps=800, verbose=False,
                      seed=0).fit(X_train)


def test_restricted_tensors_take_whole_variables_in_order(compas_constrained):
    space = compas_constrained.space_
    tensors = space.tensors(NUMPY_OPS)
    start, stop = space.groups[0]
    with pytest.raises(ValueError, match="part of the one-hot group"):
        tensors.restricted([start])
    with pytest.raises(ValueError, match="ascending and distinct"):
        tensors.restricted([stop, start])
    kept = tensors.restricted(list(range(start, stop)))
    assert kept.groups == ((0, stop - start),) and kept.n_variables == 1


def test_compas_counterfactuals_respect_every_constraint(compas, compas_constrained):
    data, _, X_test, _, _ = compas
    e = compas_constrained.explain(X_test, target_class=1)
    counts = violations(X_test, e.cf["X"], compas_constrained.space_)
    assert {k: int(v.sum()) for k, v in counts.items()} == {k: 0 for k in counts}
    names = data.feature_names
    race = [j for j, n in enumerate(names) if n.startswith("race=") or n.startswith("sex=")] + [names.index("age")]
    np.testing.assert_array_equal(e.cf["X"][:, race], X_test[:, race])
    priors = names.index("priors_count")
    assert np.all(e.cf["X"][:, priors] <= X_test[:, priors])
    assert np.all(np.isin(e.cf["X"][:, priors], np.unique(compas[1][:, priors])))
    rows = e.orig_class != 1
    assert np.mean(e.success[rows]) > 0.3  # recourse exists for many within the constraints


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frozen=st.lists(st.integers(0, 15), max_size=16, unique=True), target=st.sampled_from([0, 1, "other"]))
def test_explain_time_immutable_features_are_never_changed(compas, compas_constrained, frozen, target):
    data, _, X_test, _, _ = compas
    x = X_test[:64]
    e = compas_constrained.explain(x, target_class=target, immutable_features=frozen)
    space = compas_constrained.space_
    mask = space.mutable.copy()
    mask[frozen] = 0
    for s, end in space.groups:
        mask[s:end] = mask[s:end].min()
    counts = violations(x, e.cf["X"], space, mask=mask)
    assert {k: int(v.sum()) for k, v in counts.items()} == {k: 0 for k in counts}


def test_freezing_everything_returns_the_input_unchanged(compas, compas_constrained):
    data, _, X_test, _, _ = compas
    e = compas_constrained.explain(X_test[:20], immutable_features=list(range(16)))
    np.testing.assert_array_equal(e.cf["X"], X_test[:20])
    assert not np.any(e.success)
    single = compas_constrained.explain(X_test[:1], immutable_features=data.feature_names)
    assert single.success is False


def test_explain_time_names_are_checked(compas, compas_constrained):
    X_test = compas[2]
    with pytest.raises(ValueError, match="unknown feature name 'income'"):
        compas_constrained.explain(X_test[:1], immutable_features=["income"])
    with pytest.raises(ValueError, match="feature index 16 is out of range"):
        compas_constrained.explain(X_test[:1], immutable_features=[16])


def test_ordinal_categorical_codes_stay_on_their_grid(pima, pima_model):
    data, X_train, X_test, _, _ = pima
    # Pregnancies as an integer-coded categorical (ohe=False), capped at 9
    X_train, X_test = X_train.copy(), X_test.copy()
    X_train[:, 0] = np.minimum(X_train[:, 0], 9)
    X_test[:, 0] = np.minimum(X_test[:, 0], 9)
    explainer = CounteRGAN(pima_model, (1, 8), cat_vars={0: 10}, ohe=False, ordinal_features={"Age": range(21, 82)},
                           feature_names=data.feature_names, train_steps=300, verbose=False).fit(X_train)
    e = explainer.explain(X_test)
    cf = e.cf["X"]
    assert json.loads(e.to_json())["meta"]["params"]["ordinal_features"] == {"Age": list(range(21, 82))}
    assert np.all(np.isin(cf[:, 0], np.arange(10)))
    assert np.all(np.isin(cf[:, 7], np.arange(21, 82)))
    with pytest.raises(ValueError, match="codes 0..9"):
        bad = X_train.copy()
        bad[0, 0] = 0.5
        CounteRGAN(pima_model, (1, 8), cat_vars={0: 10}, ohe=False, train_steps=1, verbose=False).fit(bad)


def test_fairness_probe_counts_changes_of_protected_attributes(compas, compas_model):
    data, X_train, X_test, _, _ = compas
    explainer = CounteRGAN(compas_model, (1, X_train.shape[1]), feature_names=data.feature_names,
                           cat_vars=data.cat_vars, train_steps=400, verbose=False).fit(X_train)
    report = fairness_probe(explainer, X_test, protected=["race", "sex", "age"], target_class=1)
    assert report.n_instances == len(X_test)
    e = explainer.explain(X_test, target_class=1)
    names = data.feature_names
    age = names.index("age")
    older = report.table.query("attribute == 'age' and direction == 'increase'")
    assert int(older["changed"].iloc[0]) == int(np.sum(e.cf["X"][:, age] > X_test[:, age]))
    race = [j for j, n in enumerate(names) if n.startswith("race=")]
    moved = int(np.sum(np.any(e.cf["X"][:, race] != X_test[:, race], axis=1)))
    assert int(report.table.query("attribute == 'race'")["changed"].sum()) == moved
    assert report.table["share"].between(0, 1).all()
    ax = report.plot()
    assert len(ax.patches) == len(report.table)
    with pytest.raises(ValueError, match="immutable"):
        frozen = CounteRGAN(compas_model, (1, X_train.shape[1]), feature_names=names, cat_vars=data.cat_vars,
                            immutable_features=["sex=Male"], train_steps=5, verbose=False).fit(X_train)
        fairness_probe(frozen, X_test, protected=["sex"])
