"""The thread policy: ``n_threads`` intra-op threads during fit and explain, the user's setting restored after."""

import json
import threading

import numpy as np
import pytest

from alibi_countergan import CounteRGAN
from alibi_countergan.threads import check_n_threads, intra_op_threads

torch = pytest.importorskip("torch")

USER_THREADS = 2
"""The user's own setting in these tests (conftest sets 1 for the session, which would hide a missing restore)."""


@pytest.fixture()
def user_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(USER_THREADS)
    yield USER_THREADS
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model(pima):
    from alibi_countergan.testing import TorchFramework

    fw = TorchFramework()
    _, X_train, _, y_train, _ = pima
    return fw.train(fw.mlp(8, 2, X_train), X_train, y_train, epochs=5)


class Recorder:
    """A black-box predictor and a callback that both note torch's thread count each time they run."""

    def __init__(self, model) -> None:
        self.model = model
        self.seen = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(torch.get_num_threads())
        with torch.no_grad():
            return self.model(torch.as_tensor(x, dtype=torch.float32)).numpy()

    def callback(self, step, losses, explainer) -> None:
        self.seen.append(torch.get_num_threads())


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", [1]])
def test_n_threads_must_be_a_positive_integer_or_none(bad, model):
    with pytest.raises(ValueError, match="n_threads must be a positive integer"):
        CounteRGAN(model, (1, 8), n_threads=bad)
    assert check_n_threads(np.int64(3)) == 3 and check_n_threads(None) is None


@pytest.mark.parametrize("n_threads", [1, 3])
def test_fit_and_explain_run_with_n_threads_and_restore_the_users_setting(n_threads, pima, model, user_threads):
    _, X_train, X_test, _, _ = pima
    recorder = Recorder(model)
    explainer = CounteRGAN(recorder, (1, 8), train_steps=20, verbose=False, n_threads=n_threads,
                           callbacks=[recorder.callback])
    assert explainer.meta["params"]["n_threads"] == n_threads
    explainer.fit(X_train)
    assert len(recorder.seen) > 20 and set(recorder.seen) == {n_threads}  # the predictor's calls and every step
    assert torch.get_num_threads() == user_threads
    recorder.seen.clear()
    explainer.explain(X_test[:5], target_class=0)
    explainer.explain(X_test[0])
    assert recorder.seen and set(recorder.seen) == {n_threads}
    assert torch.get_num_threads() == user_threads


def test_n_threads_none_leaves_the_setting_alone(pima, model, user_threads):
    _, X_train, X_test, _, _ = pima
    recorder = Recorder(model)
    explainer = CounteRGAN(recorder, (1, 8), train_steps=5, verbose=False, n_threads=None,
                           callbacks=[recorder.callback]).fit(X_train)
    explainer.explain(X_test[:3])
    assert set(recorder.seen) == {user_threads} and torch.get_num_threads() == user_threads


def test_the_setting_is_restored_when_fit_raises(pima, model, user_threads):
    _, X_train, _, _, _ = pima

    def failing(step, losses, explainer):
        assert torch.get_num_threads() == 1
        if step == 3:
            raise RuntimeError("stop here")

    explainer = CounteRGAN(model, (1, 8), train_steps=10, verbose=False, callbacks=[failing])
    with pytest.raises(RuntimeError, match="stop here"):
        explainer.fit(X_train)
    assert torch.get_num_threads() == user_threads
    with pytest.raises(ValueError):  # a bad input, rejected inside the policy
        explainer.fit(X_train[:, :3])
    assert torch.get_num_threads() == user_threads


def test_nested_and_concurrent_blocks_restore_the_first_setting(user_threads):
    with intra_op_threads("pytorch", 1):
        assert torch.get_num_threads() == 1
        with intra_op_threads("pytorch", 3):
            assert torch.get_num_threads() == 3
        assert torch.get_num_threads() == 3  # the outer block does not set it back mid-way: the last setter wins
    assert torch.get_num_threads() == user_threads

    barrier = threading.Barrier(2)
    errors = []

    def worker() -> None:
        try:
            with intra_op_threads("pytorch", 1):
                barrier.wait(timeout=10)  # both blocks are open at once
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and torch.get_num_threads() == user_threads


def test_a_loaded_explainer_keeps_n_threads_and_old_saves_load_with_the_default(pima, model, tmp_path):
    _, X_train, X_test, _, _ = pima
    explainer = CounteRGAN(model, (1, 8), train_steps=5, verbose=False, n_threads=3).fit(X_train)
    explainer.save(tmp_path / "new")
    loaded = CounteRGAN.load(tmp_path / "new", model)
    assert loaded.n_threads == 3 and loaded.meta["params"]["n_threads"] == 3

    explainer.save(tmp_path / "old")
    config_path = tmp_path / "old" / "countergan.json"
    config = json.loads(config_path.read_text())
    del config["params"]["n_threads"]  # a save made before the parameter existed
    config["meta"]["params"].pop("n_threads")
    config_path.write_text(json.dumps(config))
    old = CounteRGAN.load(tmp_path / "old", model)
    assert old.n_threads == 1 and old.meta["params"]["n_threads"] == 1
    assert np.array_equal(old.explain(X_test[:8]).cf["X"], explainer.explain(X_test[:8]).cf["X"])


def test_tensorflow_threads_are_left_alone(user_threads):
    pytest.importorskip("tensorflow")
    import tensorflow as tf

    before = tf.config.threading.get_intra_op_parallelism_threads()
    with intra_op_threads("tensorflow", 1):  # TensorFlow's pools cannot change once it runs: no error, no change
        assert tf.config.threading.get_intra_op_parallelism_threads() == before
        assert torch.get_num_threads() == user_threads
    assert tf.config.threading.get_intra_op_parallelism_threads() == before


def test_fit_limits_the_predictors_native_thread_pools_and_restores_them(pima):
    """A scikit-learn model's OpenMP threads (gradient-boosted trees) run with n_threads during fit, and the
    process's pools are as they were afterwards."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_info, threadpool_limits

    _, X_train, _, y_train, _ = pima
    trees = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X_train, y_train)
    seen = []

    def predict(x):
        seen.append({p["user_api"]: p["num_threads"] for p in threadpool_info()})
        return trees.predict_proba(x)

    with threadpool_limits(limits=2):
        before = {p["user_api"]: p["num_threads"] for p in threadpool_info()}
        CounteRGAN(predict, (1, 8), train_steps=3, verbose=False).fit(X_train)
        after = {p["user_api"]: p["num_threads"] for p in threadpool_info()}
    assert seen and all(set(s.values()) == {1} for s in seen)
    assert after == before
