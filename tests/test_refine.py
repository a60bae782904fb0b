"""The explain-time refinement: constraints held at every step, minimal and valid counterfactuals, batched calls."""

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alibi_countergan import CounteRGAN
from alibi_countergan.constraints import change_cost, project
from alibi_countergan.features import build_feature_space
from alibi_countergan.metrics import violations
from alibi_countergan.ops import NUMPY_OPS
from alibi_countergan.refine import BOUNDARY_MARGIN, BRACKET_SCALES, Criterion, Refiner, _argmin_per_row

# a space with every kind of constraint: numeric, monotone up and down, ordinal, one-hot groups, immutable
N_FEATURES = 9
GROUPS = ((4, 7),)


def _space(rng: np.random.Generator):
    fit = rng.normal(size=(200, N_FEATURES)).astype(np.float32)
    fit[:, 3] = rng.integers(0, 6, 200)  # ordinal counts
    fit[:, 4:7] = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 200)]
    fit[:, 8] = rng.integers(0, 2, 200)
    return build_feature_space(fit, channel_index=None, feature_shape=(N_FEATURES,), feature_range=None,
                               immutable=[7], monotone={1: 1, 2: -1}, groups=GROUPS,
                               grids={3: np.arange(6, dtype=np.float32), 8: np.array([0, 1], np.float32)},
                               min_change=0.1), fit


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 16), scale=st.floats(0.0, 4.0), keep_rate=st.floats(0.0, 1.0),
       frozen_rate=st.floats(0.0, 1.0))
def test_every_refinement_candidate_holds_every_constraint(seed, scale, keep_rate, frozen_rate):
    rng = np.random.default_rng(seed)
    space, fit = _space(rng)
    x = fit[rng.integers(0, len(fit), 16)]
    mask = np.broadcast_to(space.mutable, x.shape) * (rng.random(x.shape) >= frozen_rate)
    for start, stop in space.groups:  # a request freezes a group as a whole
        mask[:, start:stop] = mask[:, start:start + 1]
    tensors = space.tensors(NUMPY_OPS)
    cf = project(NUMPY_OPS, x, rng.normal(scale=3.0, size=x.shape).astype(np.float32), mask, tensors, hard=True)
    refiner = Refiner(space, tensors, lambda rows: np.full((len(rows), 2), 0.5), Criterion())
    keep = (rng.random(x.shape) < keep_rate).astype(np.float32)
    candidate = refiner.build(x, cf, mask, np.full(len(x), scale, dtype=np.float32), keep)
    broken = violations(x, candidate, space, mask=mask)
    assert all(int(v.sum()) == 0 for v in broken.values()), {k: v.tolist() for k, v in broken.items()}
    # scale 1 with everything kept gives back the counterfactual, but for changes that the range clipped
    # below min_change (the refinement drops those)
    same = refiner.build(x, cf, mask, np.ones(len(x), dtype=np.float32))
    tiny = np.abs(cf - x) < space.min_change * space.spread
    np.testing.assert_allclose(same[~tiny], cf[~tiny], atol=1e-5)
    np.testing.assert_array_equal(same[tiny], x[tiny])


def test_the_criterion_is_the_margin_past_the_boundary_or_a_target_probability():
    proba = np.array([[0.46, 0.54], [0.49, 0.51], [0.1, 0.9], [0.25, 0.28]])
    target = np.array([1, 1, 1, 1])
    assert Criterion().met(proba, target).tolist() == [True, False, True, False]
    assert Criterion(0.8).met(proba, target).tolist() == [False, False, True, False]
    np.testing.assert_allclose(Criterion().slack(proba[:1], target[:1]), 0.54 - 0.46 - BOUNDARY_MARGIN)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**16 - 1), n_classes=st.integers(2, 5), target_proba=st.sampled_from([None, 0.3, 0.7]))
def test_one_target_for_every_row_is_judged_as_that_target_repeated(seed, n_classes, target_proba):
    # a single row's candidates all share its target: the criterion then reads one column
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(n_classes), 40).astype(np.float32)
    target = int(rng.integers(n_classes))
    criterion = Criterion(target_proba)
    np.testing.assert_array_equal(criterion.slack(proba, np.int64(target)), criterion.slack(proba, np.full(40, target)))
    np.testing.assert_array_equal(criterion.met(proba, target), criterion.met(proba, np.full(40, target)))


def test_the_cheapest_candidate_of_one_row_is_the_first_smallest_finite_one():
    owner = np.zeros(5, dtype=int)
    assert _argmin_per_row(owner, np.array([3.0, 1.0, 2.0, 1.0, 5.0]), 1).tolist() == [1]
    assert _argmin_per_row(owner, np.array([np.inf, 4.0, np.nan, 2.0, -np.inf]), 1).tolist() == [3]
    assert _argmin_per_row(owner, np.array([np.inf, np.nan, np.inf, np.nan, np.inf]), 1).tolist() == [-1]
    assert _argmin_per_row(owner[:0], np.zeros(0), 1).tolist() == [-1]


def _cost(explainer, x, cf):
    return change_cost(NUMPY_OPS, x, cf, explainer.space_.tensors(NUMPY_OPS)) * explainer.space_.tensors(
        NUMPY_OPS).n_variables


def test_refinement_keeps_every_valid_row_valid_and_never_costs_more(pima, pima_whitebox):
    _, _, X_test, _, _ = pima
    raw = pima_whitebox.explain(X_test, target_class="other", refine=False)
    refined = pima_whitebox.explain(X_test, target_class=raw.target)
    assert np.all(refined.success[raw.success])  # what the generator found stays found
    assert refined.success.mean() >= raw.success.mean()
    both = raw.success & refined.success
    raw_cost, refined_cost = _cost(pima_whitebox, X_test, raw.cf["X"]), _cost(pima_whitebox, X_test, refined.cf["X"])
    assert np.all(refined_cost[both] <= raw_cost[both] + 1e-4)
    assert refined_cost[both].mean() < 0.8 * raw_cost[both].mean()  # minimal, not merely no worse
    # each refined success is past the boundary by the margin, with the probabilities the predictor gives
    met = Criterion().met(refined.cf["proba"], refined.target)
    assert np.all(met[refined.success & ~raw.success] | ~refined.success[refined.success & ~raw.success])
    assert np.mean(met[refined.success]) >= 0.95


def test_a_target_probability_is_reached_when_asked(pima, pima_whitebox):
    _, _, X_test, _, _ = pima
    loose = pima_whitebox.explain(X_test, target_class="other")
    strict = pima_whitebox.explain(X_test, target_class=loose.target, target_proba=0.8)
    p_strict = strict.cf["proba"][np.arange(len(X_test)), strict.target]
    already = strict.orig_proba.argmax(axis=1) == strict.target
    # success means the asked probability is reached: never a lower one (rows already of their target aside)
    assert np.all(p_strict[strict.success & ~already] >= 0.8)
    assert np.all(strict.success[(p_strict >= 0.8) & (strict.cf["class"] == strict.target)])
    assert strict.success.mean() >= 0.9
    raw = pima_whitebox.explain(X_test, target_class=loose.target, target_proba=0.8, refine=False)
    p_raw = raw.cf["proba"][np.arange(len(X_test)), raw.target]
    assert not raw.success[~already & (p_raw < 0.8)].any()
    assert np.median(_cost(pima_whitebox, X_test, strict.cf["X"])) > np.median(
        _cost(pima_whitebox, X_test, loose.cf["X"]))


def test_refinement_calls_the_predictor_a_handful_of_times_whatever_the_batch(backend, compas, compas_model):
    data, X_train, X_test, _, _ = compas
    predict = backend.numpy_fn(compas_model)
    calls = []

    def counting(x):
        calls.append(len(x))
        return predict(x)

    explainer = CounteRGAN(counting, (1, X_train.shape[1]), backend=backend.name, cat_vars=data.cat_vars,
                           feature_names=data.feature_names, immutable_features=["sex", "race", "age"],
                           train_steps=300, verbose=False).fit(X_train)
    rows = predict(X_test).argmax(1) == 0
    counts = {}
    for n in (1, int(rows.sum())):
        calls.clear()
        explanation = explainer.explain(X_test[rows][:n], target_class=1)
        counts[n] = len(calls)
        broken = violations(X_test[rows][:n], explanation.cf["X"], explainer.space_)
        assert all(int(v.sum()) == 0 for v in broken.values())
    assert max(counts.values()) <= 12, counts


def test_a_row_with_few_changes_keeps_the_cheapest_subset_of_them_that_reaches_the_target(pima, pima_whitebox):
    _, _, X_test, _, _ = pima
    raw = pima_whitebox.explain(X_test, target_class="other", refine=False)
    refiner = pima_whitebox._inference(pima_whitebox._state()).refiner(np.dtype(np.float32), Criterion())
    flat, cf = X_test.reshape(len(X_test), -1), raw.cf["X"].reshape(len(X_test), -1)
    rows = np.flatnonzero(Criterion().met(raw.cf["proba"], raw.target) & np.any(cf != flat, axis=1))
    mask = np.broadcast_to(pima_whitebox.space_.mutable, flat.shape)[rows]
    dropped, _ = refiner._drop(flat[rows], raw.target[rows], mask, cf[rows], raw.cf["proba"][rows])
    costs = refiner.cost(flat[rows], dropped)
    several = 0
    for i, row in enumerate(rows):  # brute force, one candidate at a time
        changed = np.flatnonzero(refiner.variable_costs(flat[row:row + 1], cf[row:row + 1])[0] > 0)
        if len(changed) > 5:  # the greedy path
            assert costs[i] <= refiner.cost(flat[row:row + 1], cf[row:row + 1])[0] + 1e-6
            continue
        several += len(changed) > 1
        best = refiner.cost(flat[row:row + 1], cf[row:row + 1])[0]
        for size in range(1, len(changed)):
            for kept in itertools.combinations(changed, size):
                keep = np.isin(refiner.variables.of_column, kept).astype(np.float32)[None]
                candidate = refiner.build(flat[row:row + 1], cf[row:row + 1], mask[i:i + 1], np.ones(1), keep)
                if Criterion().met(refiner.predict(candidate), raw.target[row:row + 1])[0]:
                    best = min(best, refiner.cost(flat[row:row + 1], candidate)[0])
        assert costs[i] == pytest.approx(best, rel=1e-5, abs=1e-6)
    assert several >= 10  # the subsets were really searched


def test_images_are_shrunk_by_interpolation_in_two_calls_and_nearly_as_far_as_the_grid(backend, digits, digits_model,
                                                                                       digits_whitebox,
                                                                                       count_predictor_calls):
    # 64 pixels: more variables than max_exact_variables, so no drop stage and an interpolating shrink
    X = digits["X_test"][:120]
    predict = backend.numpy_fn(digits_model)
    target = (predict(X).argmax(1) + 1) % 10
    raw = digits_whitebox.explain(X, target_class=target, refine=False)
    calls = []

    def counting(rows):
        calls.append(len(rows))
        return digits_whitebox._predict(rows.reshape((-1, 8, 8, 1)), 10, None, digits_whitebox.backend_)

    flat, raw_flat = X.reshape(len(X), -1), raw.cf["X"].reshape(len(X), -1)
    refiner = Refiner(digits_whitebox.space_, digits_whitebox.space_.tensors(NUMPY_OPS), counting, Criterion())
    assert refiner.wide
    ok = np.flatnonzero(Criterion().met(raw.cf["proba"], target))
    assert ok.size >= 60
    mask = np.broadcast_to(digits_whitebox.space_.mutable, flat.shape)[ok]
    args = flat[ok], raw_flat[ok], target[ok], mask, raw.cf["proba"][ok]
    interpolated, p_interpolated = refiner.refine(*args, x_proba=raw.orig_proba[ok])
    assert calls == [len(ok) * len(BRACKET_SCALES), len(ok)]  # the bracket, then one interpolated scale per row
    gridded, p_gridded = refiner._shrink(args[0], args[2], args[3], args[1], args[4])
    assert Criterion().met(p_interpolated, target[ok]).all() and Criterion().met(p_gridded, target[ok]).all()
    l1 = {name: np.abs(cf - flat[ok]).sum(axis=1) for name, cf in
          (("raw", raw_flat[ok]), ("interpolated", interpolated), ("grid", gridded))}
    assert np.all(l1["interpolated"] <= l1["raw"] + 1e-5)
    assert l1["interpolated"].mean() < 0.9 * l1["raw"].mean()  # a real shrink
    assert l1["interpolated"].mean() <= 1.05 * l1["grid"].mean()  # nearly as far as 31 evaluations per row
    # through explain, with the constraints held, and a row alone as in the batch
    refined = digits_whitebox.explain(X, target_class=target)
    assert refined.success.mean() >= raw.success.mean()
    assert all(int(v.sum()) == 0 for v in violations(flat, refined.cf["X"].reshape(len(X), -1),
                                                         digits_whitebox.space_).values())
    explained = count_predictor_calls(digits_whitebox)
    alone = digits_whitebox.explain(X[ok[:1]], target_class=target[ok[:1]])
    np.testing.assert_allclose(alone.cf["X"][0], refined.cf["X"][ok[0]], atol=1e-5)
    # one call for the original, the proposal and its bracket, one for the interpolated scale
    assert explained == [2 + len(BRACKET_SCALES), 1]


def test_an_image_bracket_of_other_scales_costs_one_row_per_scale(backend, digits, digits_model, digits_whitebox):
    X = digits["X_test"][:120]
    target = (backend.numpy_fn(digits_model)(X).argmax(1) + 1) % 10
    raw = digits_whitebox.explain(X, target_class=target, refine=False)
    flat, raw_flat = X.reshape(len(X), -1), raw.cf["X"].reshape(len(X), -1)
    ok = np.flatnonzero(Criterion().met(raw.cf["proba"], target))
    space = digits_whitebox.space_
    mask = np.broadcast_to(space.mutable, flat.shape)[ok]
    calls = []

    def counting(rows):
        calls.append(len(rows))
        return digits_whitebox._predict(rows.reshape((-1, 8, 8, 1)), 10, None, digits_whitebox.backend_)

    l1 = {}
    for scales in [(), (0.5,), BRACKET_SCALES]:
        calls.clear()
        refiner = Refiner(space, space.tensors(NUMPY_OPS), counting, Criterion(), bracket_scales=scales)
        cf, proba = refiner._interpolate(flat[ok], target[ok], mask, raw_flat[ok], raw.cf["proba"][ok],
                                         raw.orig_proba[ok])
        assert calls == ([len(ok) * len(scales)] if scales else []) + [len(ok)]
        assert Criterion().met(proba, target[ok]).all()
        l1[len(scales)] = np.abs(cf - flat[ok]).sum(axis=1)
        assert np.all(l1[len(scales)] <= np.abs(raw_flat[ok] - flat[ok]).sum(axis=1) + 1e-5)
    assert l1[3].mean() <= l1[0].mean()  # more scales, a closer bracket
    for bad in [(0.5, 0.25), (0.0, 0.5), (0.5, 1.0), (0.5, 0.5)]:
        with pytest.raises(ValueError, match="bracket_scales must be strictly ascending"):
            Refiner(space, space.tensors(NUMPY_OPS), counting, Criterion(), bracket_scales=bad)


def test_a_costlier_category_is_switched_less_often(backend, compas, compas_model):
    data, X_train, X_test, _, _ = compas
    predict = backend.numpy_fn(compas_model)
    explainer = CounteRGAN(predict, (1, X_train.shape[1]), backend=backend.name, cat_vars=data.cat_vars,
                           feature_names=data.feature_names, immutable_features=["sex", "race", "age"],
                           train_steps=300, verbose=False).fit(X_train)
    x = X_test[predict(X_test).argmax(1) == 0]
    raw = explainer.explain(x, target_class=1, refine=False)
    ok = Criterion().met(raw.cf["proba"], raw.target)
    x, cf, proba, orig_proba = x[ok], raw.cf["X"][ok], raw.cf["proba"][ok], raw.orig_proba[ok]
    space = explainer.space_
    charge = [i for i, (start, _) in enumerate(space.groups) if data.feature_names[start].startswith("c_charge")][0]
    start, stop = space.groups[charge]
    mask = np.broadcast_to(space.mutable, x.shape)
    switched = {}
    for cost in (0.2, 1.0, 5.0):
        costs = list(space.group_costs)
        costs[charge] = cost
        costly = dataclasses.replace(space, category_costs=tuple(costs))
        refiner = Refiner(costly, costly.tensors(NUMPY_OPS), predict, Criterion())
        refined, refined_proba = refiner.refine(x, cf, np.ones(len(x), dtype=int), mask, proba, orig_proba)
        assert Criterion().met(refined_proba, np.ones(len(x), dtype=int)).all()
        switched[cost] = int(np.any(refined[:, start:stop] != x[:, start:stop], axis=1).sum())
    assert switched[5.0] <= switched[1.0] <= switched[0.2], switched
    assert switched[5.0] < switched[0.2], switched


def test_a_row_without_counterfactual_says_so(pima, pima_whitebox):
    _, _, X_test, _, _ = pima
    every = list(range(8))
    explanation = pima_whitebox.explain(X_test[:20], target_class="other", immutable_features=every)
    np.testing.assert_array_equal(explanation.cf["X"], X_test[:20])
    assert not explanation.success.any()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["white-box", "black-box"])
def test_validity_does_not_fall_as_training_runs_longer(backend, pima, pima_model, method):
    data, X_train, X_test, _, _ = pima
    predictor = pima_model if method == "white-box" else backend.numpy_fn(pima_model)
    validity = {}
    for steps in (250, 2000):  # the default is 1,000
        explainer = CounteRGAN(predictor, (1, 8), backend=backend.name, method=method, train_steps=steps,
                               feature_names=data.feature_names, immutable_features=["Pregnancies", "Age"],
                               verbose=False, seed=0).fit(X_train)
        validity[steps] = float(explainer.explain(X_test, target_class="other").success.mean())
    assert min(validity.values()) >= 0.9, validity
    assert validity[2000] >= validity[250] - 0.03, validity


def test_a_refined_tabular_row_takes_one_predictor_call_and_is_no_costlier_than_the_stages(
        pima, pima_whitebox, monkeypatch, count_predictor_calls):
    _, _, X_test, _, _ = pima
    from alibi_countergan import refine

    with monkeypatch.context() as patched:
        patched.setattr(refine, "SEARCH_CALL_VALUES", 0)  # the stages, as for a large batch
        staged = pima_whitebox.explain(X_test[:40], target_class="other")
    calls = count_predictor_calls(pima_whitebox)
    for target in ("other", staged.target):
        counts, alone = [], []
        for i in range(40):
            calls.clear()
            asked = target if isinstance(target, str) else int(target[i])
            alone.append(pima_whitebox.explain(X_test[i:i + 1], target_class=asked))
            counts.append(len(calls))
        assert np.median(counts) == 1, counts
        assert [e.target for e in alone] == list(staged.target)
        success = np.array([e.success for e in alone])
        assert np.all(success[staged.success])  # what the stages reach, one call reaches too
        cf = np.concatenate([e.cf["X"] for e in alone])
        both = success & staged.success
        # the joint search over subsets and scales: on average no costlier than the drop and shrink stages
        assert _cost(pima_whitebox, X_test[:40], cf)[both].mean() <= _cost(
            pima_whitebox, X_test[:40], staged.cf["X"])[both].mean() * 1.01
        broken = violations(X_test[:40], cf, pima_whitebox.space_)
        assert all(int(v.sum()) == 0 for v in broken.values())


def test_a_proposal_that_misses_is_grown_in_a_second_call_and_never_takes_more_calls_than_the_stages(
        pima, pima_model, count_predictor_calls):
    _, X_train, X_test, _, _ = pima
    # a generator trained briefly, whose proposals often miss
    pima_whitebox = CounteRGAN(pima_model, (1, 8), train_steps=50, verbose=False, seed=0).fit(X_train)
    X_test = np.concatenate([X_test, X_train])  # rows enough for it to miss a few
    raw = pima_whitebox.explain(X_test, target_class="other", refine=False)
    missed = np.flatnonzero(~Criterion().met(raw.cf["proba"], raw.target) & (raw.orig_class != raw.target))[:25]
    assert missed.size >= 5
    refiner = pima_whitebox._inference(pima_whitebox._state()).refiner(np.dtype(np.float32), Criterion())
    calls = count_predictor_calls(pima_whitebox)
    counts, staged_counts, cost, staged_cost, success, staged_success = [], [], [], [], [], []
    for i in missed:
        x, target = X_test[i:i + 1], raw.target[i:i + 1]
        calls.clear()
        alone = pima_whitebox.explain(x, target_class=int(target[0]))
        counts.append(len(calls))
        # the same proposal through the stages alone, after the first call (the refinement before the second call)
        calls.clear()
        cf, proba = refiner.refine(x.reshape(1, -1), raw.cf["X"][i:i + 1].reshape(1, -1), target,
                                   np.broadcast_to(pima_whitebox.space_.mutable, (1, x.size)), raw.cf["proba"][i:i + 1])
        staged_counts.append(1 + len(calls))
        success.append(alone.success)
        staged_success.append(bool(Criterion().reached(proba, target)[0]))
        cost.append(_cost(pima_whitebox, x.reshape(1, -1), alone.cf["X"].reshape(1, -1))[0])
        staged_cost.append(_cost(pima_whitebox, x.reshape(1, -1), cf)[0])
    counts, staged_counts = np.array(counts), np.array(staged_counts)
    assert np.all(counts <= staged_counts), (counts, staged_counts)
    assert np.any(counts == 2), counts  # a grown residual is found in the second call
    assert np.all(np.array(success)[staged_success])
    # the rows the first call leaves over (some subset of a missing proposal may reach the target at once): grown
    # jointly over subsets and scales, on average no costlier than repaired, dropped and shrunk
    over = (counts > 1) & np.array(success) & np.array(staged_success)
    assert np.mean(np.array(cost)[over]) <= np.mean(np.array(staged_cost)[over]) * 1.01


def test_the_one_call_search_is_never_costlier_than_the_exhaustive_drop_stage(pima, pima_whitebox):
    _, _, X_test, _, _ = pima
    raw = pima_whitebox.explain(X_test, target_class="other", refine=False)
    refiner = pima_whitebox._inference(pima_whitebox._state()).refiner(np.dtype(np.float32), Criterion())
    flat, cf = X_test.reshape(len(X_test), -1), raw.cf["X"].reshape(len(X_test), -1)
    changed = (refiner.variable_costs(flat, cf) > 0).sum(axis=1)
    rows = np.flatnonzero(Criterion().met(raw.cf["proba"], raw.target) & (changed >= 1) & (changed <= 5))[:12]
    mask = np.broadcast_to(pima_whitebox.space_.mutable, flat.shape)[rows]
    found = refiner.search(flat[rows], cf[rows], raw.target[rows, None], mask)
    assert found is not None  # a dozen Pima rows fit in one call
    dropped, _ = refiner._drop(flat[rows], raw.target[rows], mask, cf[rows], raw.cf["proba"][rows])
    assert found.done.all() and Criterion().met(found.proba, raw.target[rows]).all()
    # every subset at scale 1 is among the search's candidates
    assert np.all(refiner.cost(flat[rows], found.cf) <= refiner.cost(flat[rows], dropped) + 1e-5)
    assert all(int(v.sum()) == 0 for v in violations(flat[rows], found.cf, pima_whitebox.space_, mask=mask).values())
    np.testing.assert_allclose(found.proba, refiner.predict(found.cf), atol=1e-6)  # the probabilities it returns


def test_a_batch_too_large_for_one_call_is_refined_in_stages(pima, pima_whitebox, monkeypatch,
                                                             count_predictor_calls):
    _, _, X_test, _, _ = pima
    from alibi_countergan import refine

    one_call = pima_whitebox.explain(X_test[:3], target_class="other")
    monkeypatch.setattr(refine, "SEARCH_CALL_VALUES", 0)
    calls = count_predictor_calls(pima_whitebox)
    staged = pima_whitebox.explain(X_test[:3], target_class="other")
    assert len(calls) >= 2
    np.testing.assert_array_equal(staged.target, one_call.target)
    np.testing.assert_array_equal(staged.success, one_call.success)
