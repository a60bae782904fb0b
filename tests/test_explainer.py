"""Behaviour of the fitted explainer on real data and real models."""

import json
import time

import numpy as np
import pytest

from alibi_countergan import CounteRGAN, LossHistory, StopTraining, TrainingDivergedError


def _validity(explanation) -> float:
    return float(np.mean(explanation.success))


def test_white_box_counterfactuals_reach_their_target(backend, pima, pima_model, pima_whitebox):
    _, _, X_test, _, _ = pima
    explanation = pima_whitebox.explain(X_test, refine=False)  # the generator's own output
    unchanged = np.mean(backend.numpy_fn(pima_model)(X_test).argmax(1) == explanation.target)
    assert pima_whitebox.meta["type"] == ["whitebox", backend.name]
    assert unchanged == 0.0  # 'other' never targets the predicted class
    assert _validity(explanation) >= 0.8
    gain = (explanation.cf["proba"][np.arange(len(X_test)), explanation.target]
            - explanation.orig_proba[np.arange(len(X_test)), explanation.target])
    assert gain.mean() > 0.2
    assert _validity(pima_whitebox.explain(X_test)) >= 0.95  # refined


def test_black_box_works_with_a_non_differentiable_scikit_learn_model(backend, pima):
    from sklearn.ensemble import RandomForestClassifier

    _, X_train, X_test, y_train, _ = pima
    forest = RandomForestClassifier(n_estimators=50, min_samples_leaf=3, random_state=0).fit(X_train, y_train)
    calls = []

    def predict_fn(x):
        assert isinstance(x, np.ndarray)
        calls.append(len(x))
        return forest.predict_proba(x)

    explainer = CounteRGAN(predict_fn, (1, 8), backend=backend.name, verbose=False, seed=0).fit(X_train)
    assert explainer.meta["type"] == ["blackbox", backend.name]
    assert explainer.white_box is False
    favourable = 0
    rows = forest.predict(X_test) != favourable
    explanation = explainer.explain(X_test[rows], target_class=favourable)
    # unchanged inputs reach the target for none of these rows; the counterfactuals for most
    assert _validity(explanation) >= 0.6
    assert calls, "the black-box predictor was never called"


def test_black_box_with_the_framework_model_wrapped_in_a_function(backend, pima, pima_model):
    _, X_train, X_test, _, _ = pima
    explainer = CounteRGAN(backend.numpy_fn(pima_model), (1, 8), backend=backend.name, verbose=False,
                           seed=0).fit(X_train)
    assert not explainer.white_box and explainer.meta["type"] == ["blackbox", backend.name]
    explanation = explainer.explain(X_test)
    assert _validity(explanation) >= 0.6


def test_conditional_targets_work_for_every_class(backend, digits, digits_model, digits_whitebox):
    X_test = digits["X_test"]
    predicted = backend.numpy_fn(digits_model)(X_test.reshape(len(X_test), -1).reshape(-1, 8, 8, 1)).argmax(1)
    rates = []
    for target in range(10):
        rows = predicted != target
        explanation = digits_whitebox.explain(X_test[rows], target_class=target)
        assert np.all(explanation.target == target)
        rates.append(_validity(explanation))
    assert min(rates) >= 0.5, f"validity per target class: {np.round(rates, 2)}"
    assert np.mean(rates) >= 0.8, f"validity per target class: {np.round(rates, 2)}"


def test_other_picks_the_best_class_among_all_other_classes(digits, digits_whitebox):
    X = digits["X_test"][:20]
    other = digits_whitebox.explain(X, target_class="other", refine=False)
    assert np.all(other.target != other.orig_class)
    for k in range(10):
        fixed = digits_whitebox.explain(X, target_class=k, refine=False)
        eligible = other.orig_class != k
        chosen = other.cf["proba"][np.arange(len(X)), other.target]
        assert np.all(chosen[eligible] >= fixed.cf["proba"][eligible, k] - 1e-6)


def test_explanation_matches_cfproto_types_for_one_instance(pima, pima_whitebox):
    _, _, X_test, _, _ = pima
    e = pima_whitebox.explain(X_test[:1])
    assert isinstance(e.cf["X"], np.ndarray) and e.cf["X"].shape == (1, 8)
    assert isinstance(e.cf["class"], np.integer)
    assert isinstance(e.cf["proba"], np.ndarray) and e.cf["proba"].shape == (1, 2)
    assert isinstance(e.orig_class, np.integer)
    assert isinstance(e.orig_proba, np.ndarray) and e.orig_proba.shape == (1, 2)
    assert isinstance(e.success, bool)
    assert isinstance(e.target, np.integer)
    assert e.residual.shape == (1, 8)
    np.testing.assert_allclose(e.cf["X"] - X_test[:1], e.residual)
    # the same instance without the batch axis gives the same answer
    bare = pima_whitebox.explain(X_test[0])
    np.testing.assert_array_equal(bare.cf["X"], e.cf["X"])


def test_batch_explanation_has_a_leading_batch_axis_and_matches_single_calls(pima, pima_whitebox):
    _, _, X_test, _, _ = pima
    batch = pima_whitebox.explain(X_test[:5], target_class=[1])
    assert batch.cf["X"].shape == (5, 8)
    assert batch.cf["class"].shape == (5,) and batch.orig_class.shape == (5,)
    assert batch.cf["proba"].shape == (5, 2) and batch.success.dtype == bool
    for i in range(5):
        single = pima_whitebox.explain(X_test[i:i + 1], target_class=1)
        np.testing.assert_allclose(single.cf["X"][0], batch.cf["X"][i], rtol=1e-5, atol=1e-5)


def test_instances_already_in_the_target_class_are_their_own_counterfactuals(pima, pima_whitebox):
    _, _, X_test, _, _ = pima
    x = X_test[:40]
    predicted = pima_whitebox.explain(x, target_class=0).orig_class
    e = pima_whitebox.explain(x, target_class=predicted)
    np.testing.assert_array_equal(e.cf["X"], x)
    assert np.all(e.success) and not np.any(e.residual)
    np.testing.assert_array_equal(e.cf["proba"], e.orig_proba)


def test_per_instance_targets(pima, pima_whitebox):
    _, _, X_test, _, _ = pima
    targets = [0, 1, 0, 1]
    e = pima_whitebox.explain(X_test[:4], target_class=targets)
    np.testing.assert_array_equal(e.target, targets)
    np.testing.assert_array_equal(e.success, e.cf["class"] == np.array(targets))


def test_constructor_target_is_the_default_and_explain_overrides_it(pima, pima_model, pima_whitebox):
    _, X_train, X_test, _, _ = pima
    explainer = CounteRGAN(pima_model, (8,), target_class=1, train_steps=50, verbose=False).fit(X_train)
    assert np.all(explainer.explain(X_test[:6]).target == 1)
    assert np.all(explainer.explain(X_test[:6], target_class=0).target == 0)


def test_to_json_and_meta(backend, pima, pima_whitebox):
    _, _, X_test, _, _ = pima
    for X in (X_test[:1], X_test[:3]):
        e = pima_whitebox.explain(X)
        decoded = json.loads(e.to_json())
        assert set(decoded["data"]) >= {"cf", "orig_class", "orig_proba", "target", "success", "residual"}
        assert set(decoded["data"]["cf"]) == {"X", "class", "proba"}
        meta = decoded["meta"]
        assert meta["name"] == "CounteRGAN"
        assert meta["type"] == ["whitebox", backend.name]
        assert meta["explanations"] == ["local"]
        assert meta["params"]["countergan_version"]
        assert meta["params"]["n_classes"] == 2
    json.dumps(pima_whitebox.meta, allow_nan=False)  # the explainer's own metadata is strict JSON as it is


def test_same_seed_gives_the_same_generator_and_another_seed_does_not(pima, pima_model):
    _, X_train, X_test, _, _ = pima

    def fitted(seed):
        return CounteRGAN(pima_model, (1, 8), train_steps=60, seed=seed, verbose=False).fit(X_train)

    a, b, c = fitted(3), fitted(3), fitted(4)
    for key, value in a.backend_.get_weights().items():
        np.testing.assert_array_equal(value, b.backend_.get_weights()[key])
    np.testing.assert_array_equal(a.explain(X_test).cf["X"], b.explain(X_test).cf["X"])
    assert not np.array_equal(a.explain(X_test).cf["X"], c.explain(X_test).cf["X"])


def test_fit_does_not_disturb_global_random_state(backend, pima, pima_model):
    # numpy's legacy global generator, Python's `random` and the framework's global seed are what
    # users' code may rely on
    _, X_train, X_test, _, _ = pima
    backend.seed_globals(123)
    expected = backend.draw_globals()
    backend.seed_globals(123)
    CounteRGAN(pima_model, (1, 8), train_steps=5, seed=9, verbose=False).fit(X_train).explain(X_test[:3])
    assert backend.draw_globals() == expected


def test_counterfactuals_stay_in_the_feature_range(pima, pima_whitebox):
    _, X_train, X_test, _, _ = pima
    cf = pima_whitebox.explain(X_test).cf["X"]
    lower = np.minimum(X_train.min(0), X_test)
    upper = np.maximum(X_train.max(0), X_test)
    assert np.all(cf >= lower - 1e-5) and np.all(cf <= upper + 1e-5)


def test_custom_feature_range_is_respected(pima, pima_model):
    _, X_train, X_test, _, _ = pima
    lower, upper = np.percentile(X_train, 10, axis=0), np.percentile(X_train, 90, axis=0)
    explainer = CounteRGAN(pima_model, (1, 8), feature_range=(lower, upper), train_steps=200,
                           verbose=False).fit(X_train)
    x = np.clip(X_test, lower, upper)
    cf = explainer.explain(x).cf["X"]
    assert np.all(cf >= lower - 1e-4) and np.all(cf <= upper + 1e-4)


def test_callbacks_see_every_iteration_and_can_stop_training(pima, pima_model):
    _, X_train, X_test, _, _ = pima
    history = LossHistory()
    seen = []

    def stop_at_30(step, losses, explainer):
        seen.append(step)
        if step == 29:
            assert explainer.explain(X_test[:2]).cf["X"].shape == (2, 8)  # usable mid-training
            raise StopTraining

    explainer = CounteRGAN(pima_model, (1, 8), train_steps=100, callbacks=[history, stop_at_30],
                           verbose=False).fit(X_train)
    assert seen == list(range(30))
    assert len(history.history["g_cls"]) == 30 and len(explainer.history_) == 30
    assert set(history.history) >= {"d_real", "d_fake", "g_adv", "g_cls", "g_l1", "g_l2"}
    explainer.explain(X_test[:1])  # still fitted


def test_a_loss_that_turns_nan_stops_training_with_a_clear_error(backend, pima, pima_model):
    _, X_train, X_test, _, _ = pima
    explainer = CounteRGAN(pima_model, (1, 8), discriminator=backend.exploding_discriminator(8), train_steps=50,
                           verbose=False)
    message = r"diverged at iteration \d+: loss \w+ is nan. Lower the learning_rate"
    with pytest.raises(TrainingDivergedError, match=message):
        explainer.fit(X_train)
    with pytest.raises(RuntimeError, match="not fitted"):
        explainer.explain(X_test[:1])


def test_progress_bar_shows_the_losses_unless_verbose_is_false(pima, pima_model, capsys, monkeypatch):
    _, X_train, _, _, _ = pima
    monkeypatch.setenv("COLUMNS", "200")  # tqdm cuts the bar to the terminal's width (80 without a terminal)
    CounteRGAN(pima_model, (1, 8), train_steps=30, verbose=True).fit(X_train)
    shown = capsys.readouterr().err
    assert "CounteRGAN fit" in shown and all(f"{word}=" in shown for word in ("realism", "classifier", "change"))
    CounteRGAN(pima_model, (1, 8), train_steps=30, verbose=False).fit(X_train)
    assert capsys.readouterr().err == ""


def test_float64_inputs_keep_immutable_features_bit_exact(pima, pima_model):
    _, X_train, X_test, _, _ = pima
    explainer = CounteRGAN(pima_model, (1, 8), immutable_features=[0, 6, 7], train_steps=100,
                           verbose=False).fit(X_train.astype(np.float64))
    x = X_test.astype(np.float64) + 1e-9
    cf = explainer.explain(x).cf["X"]
    assert cf.dtype == np.float64
    np.testing.assert_array_equal(cf[:, [0, 6, 7]], x[:, [0, 6, 7]])


def test_image_instances_use_convolutional_networks(backend, digits_whitebox):
    assert "conv2d" in backend.layer_types(digits_whitebox.backend_.generator)
    assert "conv2d" in backend.layer_types(digits_whitebox.backend_.discriminator)


def test_channels_first_images_are_supported(backend, digits, digits_model):
    X = np.moveaxis(digits["X_train"], -1, 1)  # (n, 1, 8, 8)
    model = backend.channels_first(digits_model)
    explainer = CounteRGAN(model, (1, 1, 8, 8), train_steps=150, verbose=False).fit(X)
    assert explainer.image is not None and not explainer.image.channels_last and explainer.white_box
    e = explainer.explain(np.moveaxis(digits["X_test"][:50], -1, 1))
    assert e.cf["X"].shape == (50, 1, 8, 8)
    assert np.mean(e.success) > 0.5


def test_images_of_any_size_are_supported(backend, digits, digits_model):
    # 7x7 crops of the digits; the classifier sees them padded back to 8x8
    predict = backend.numpy_fn(digits_model)

    def predict_crops(x):
        return predict(np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0))))

    X = digits["X_train"][:, :7, :7]
    explainer = CounteRGAN(predict_crops, (1, 7, 7, 1), backend=backend.name, train_steps=100, verbose=False).fit(X)
    x = digits["X_test"][:50, :7, :7]
    e = explainer.explain(x)
    assert e.cf["X"].shape == (50, 7, 7, 1)
    assert np.all(e.cf["X"] >= X.min() - 1e-6) and np.all(e.cf["X"] <= X.max() + 1e-6)
    assert np.abs(e.residual).sum() > 0


def test_ambiguous_image_layout_asks_for_data_format(digits_model):
    with pytest.raises(ValueError, match="data_format"):
        CounteRGAN(digits_model, (1, 8, 8, 8))


def test_plain_gan_ablation_moves_further_and_collapses(pima, pima_model):
    _, X_train, X_test, _, _ = pima
    spread = X_train.std(0)
    results = {}
    for residual in (True, False):
        explainer = CounteRGAN(pima_model, (1, 8), residual=residual, train_steps=300, verbose=False).fit(X_train)
        cf = explainer.explain(X_test).cf["X"]
        results[residual] = ((np.abs(cf - X_test) / spread).sum(1).mean(), cf.std(0).mean() / X_test.std(0).mean())
    assert explainer.meta["params"]["residual"] is False
    # the paper's finding: without the skip connection the generator ignores its input (mode collapse)
    # and its counterfactuals are further from the originals
    assert results[False][0] > results[True][0]
    assert results[False][1] < results[True][1]


def test_model_with_a_different_classifier_on_compas(backend, compas):
    data, X_train, X_test, y_train, _ = compas
    model = backend.train(backend.mlp(X_train.shape[1], 2, X_train, hidden=16), X_train, y_train, epochs=5, seed=1)
    explainer = CounteRGAN(model, (1, X_train.shape[1]), cat_vars=data.cat_vars, feature_names=data.feature_names,
                           verbose=False).fit(X_train)
    e = explainer.explain(X_test, target_class=1)
    rows = e.orig_class != 1
    assert np.mean(e.success[rows]) >= 0.8


def test_chunked_forward_passes_match_one_pass(digits_whitebox, digits, monkeypatch):
    """Large batches run the generator and the predictor in chunks; the counterfactuals do not change."""
    import alibi_countergan.inference as module

    x = digits["X_test"][:150]
    whole = digits_whitebox.explain(x, target_class=3)
    monkeypatch.setattr(module, "CHUNK_VALUES", 1)  # the smallest chunks: 64 rows
    assert module.chunk_rows(x[0].size) == 64
    chunked = digits_whitebox.explain(x, target_class=3)
    np.testing.assert_allclose(chunked.cf["X"], whole.cf["X"], atol=1e-5)
    np.testing.assert_allclose(chunked.cf["proba"], whole.cf["proba"], atol=1e-5)
    np.testing.assert_allclose(chunked.orig_proba, whole.orig_proba, atol=1e-6)


def test_explain_during_a_refit_sees_the_old_or_the_new_explainer_never_a_mix(backend, pima, pima_model):
    """fit trains aside and swaps the new state in at the end: a thread explaining meanwhile gets, call for
    call, exactly the old explainer's counterfactuals or exactly the new one's (never a half-trained generator)."""
    import threading

    _, X_train, X_test, _, _ = pima
    x = X_test[:20]
    common = dict(train_steps=60, verbose=False)
    old = CounteRGAN(pima_model, (1, 8), seed=0, **common).fit(X_train).explain(x, target_class=1).cf["X"]
    new = CounteRGAN(pima_model, (1, 8), seed=1, **common).fit(X_train).explain(x, target_class=1).cf["X"]
    assert not np.array_equal(old, new)

    explainer = CounteRGAN(pima_model, (1, 8), seed=0, **common).fit(X_train)
    seen, errors, done = [], [], threading.Event()

    def keep_explaining() -> None:
        while not done.is_set():
            try:
                seen.append(explainer.explain(x, target_class=1).cf["X"])
            except Exception as err:  # recorded: any error during the refit fails the test
                errors.append(err)

    worker = threading.Thread(target=keep_explaining)
    worker.start()
    try:
        while len(seen) < 3:  # the thread is explaining before the refit starts
            time.sleep(0.01)
        explainer.seed = 1
        explainer.fit(X_train)
        during = len(seen)
        time.sleep(0.1)
    finally:
        done.set()
        worker.join(timeout=60)
    assert not errors, errors[:3]
    assert during > 5, "the thread did not explain during the refit"
    kinds = ["old" if np.array_equal(cf, old) else "new" if np.array_equal(cf, new) else "mixed" for cf in seen]
    assert "mixed" not in kinds, kinds.count("mixed")
    assert kinds[0] == "old" and kinds[-1] == "new"
    assert kinds == sorted(kinds, key=["old", "new"].index)  # once new, never old again


def test_the_fitted_state_is_one_record_that_fit_swaps_in(pima):
    from sklearn.linear_model import LogisticRegression

    from alibi_countergan.fitted import FittedState

    _, X_train, X_test, y_train, _ = pima
    model = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    explainer = CounteRGAN(model, (1, 8), method="black-box", train_steps=3, batch_size=32, verbose=False)
    assert not hasattr(explainer, "backend_") and not hasattr(explainer, "history_")
    with pytest.raises(RuntimeError, match="not fitted yet"):
        explainer.explain(X_test[:1])
    explainer.fit(X_train)
    first = explainer._fitted
    assert isinstance(first, FittedState)
    assert (explainer.backend_, explainer.space_, explainer.n_classes_, explainer.table_, explainer.history_) == (
        first.backend, first.space, 2, None, first.history)
    assert explainer.encoded_config_ is explainer.config and len(first.history) == 3
    explainer.set_params(train_steps=4).fit(X_train)
    assert explainer._fitted is not first and explainer.backend_ is not first.backend
    assert len(first.history) == 3 and len(explainer.history_) == 4  # the previous record is left as it was
