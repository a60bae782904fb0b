"""What only the TensorFlow backend has: Keras model detection, compiled functions, eager-only use,
and alibi's TF1 explainers in the same process."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from alibi_countergan import CounteRGAN  # noqa: E402
from alibi_countergan.backends import framework_of, installed, resolve_backend  # noqa: E402
from alibi_countergan.backends.tensorflow import EagerExecutionRequiredError  # noqa: E402
from alibi_countergan.testing import KerasFramework  # noqa: E402

from conftest import REPO  # noqa: E402  isort: skip

KERAS = KerasFramework()


@pytest.fixture(scope="module")
def keras_pima(pima):
    _, X_train, _, y_train, _ = pima
    return KERAS.train(KERAS.mlp(8, 2, X_train), X_train, y_train, epochs=40)


@pytest.fixture(scope="module")
def keras_whitebox(pima, keras_pima):
    _, X_train, _, _, _ = pima
    return CounteRGAN(keras_pima, (1, 8), train_steps=300, verbose=False, seed=0).fit(X_train)


def _subclassed():
    class Net(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = tf.keras.layers.Dense(2, activation="softmax")

        def call(self, x, training=None):
            return self.dense(x)

    return Net()


@pytest.mark.parametrize("make", [
    lambda: tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(2, activation="softmax")]),
    lambda: KERAS.mlp(8, 2, np.ones((4, 8), np.float32)),  # functional
    _subclassed,
], ids=["sequential", "functional", "subclassed"])
def test_every_kind_of_keras_model_is_a_tensorflow_model(make):
    model = make()
    assert framework_of(model) == "tensorflow"
    assert resolve_backend(None, model) == "tensorflow"
    explainer = CounteRGAN(model, (1, 8))
    assert explainer.backend == "tensorflow" and explainer.white_box
    assert explainer.meta["type"] == ["whitebox", "tensorflow"]
    # a bound method or a plain function is not a model: black-box
    assert framework_of(model.predict) is None and framework_of(lambda x: model(x)) is None
    assert not CounteRGAN(model, (1, 8), method="black-box").white_box


def test_a_plain_function_takes_the_first_installed_framework(keras_pima):
    def predict(x):
        return keras_pima(x, training=False).numpy()

    explainer = CounteRGAN(predict, (1, 8))
    assert explainer.backend == installed()[0] and not explainer.white_box
    for alias in ("tensorflow", "tf", "keras", "TensorFlow"):
        assert CounteRGAN(predict, (1, 8), backend=alias).backend == "tensorflow"


def test_white_box_with_a_keras_model_and_another_backend_is_refused(keras_pima):
    if "pytorch" not in installed():
        pytest.skip("needs PyTorch too")
    with pytest.raises(ValueError, match="pytorch backend the predictor must be a torch.nn.Module"):
        CounteRGAN(keras_pima, (1, 8), backend="pytorch", method="white-box")
    # auto: a Keras model with the torch backend can only be used black-box
    assert not CounteRGAN(keras_pima, (1, 8), backend="pytorch").white_box


def test_keras_predict_is_never_used_and_functions_are_traced_once(pima, keras_pima):
    _, X_train, X_test, _, _ = pima

    class NoPredict(tf.keras.Model):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def call(self, x, training=None):
            return self.inner(x, training=training)

        def predict(self, *args, **kwargs):
            raise AssertionError("keras.Model.predict was called")

    model = NoPredict(keras_pima)
    explainer = CounteRGAN(model, (1, 8), train_steps=30, batch_size=64, verbose=False).fit(X_train)
    backend = explainer.backend_
    for n in (1, 2, 7, 50, 1):
        explainer.explain(X_test[:n])
    explainer.explain(X_test[:5], target_class=[0, 1, 0, 1, 1])
    # one trace each, whatever the batch size
    assert backend._d_step.experimental_get_tracing_count() == 1
    assert backend._g_step.experimental_get_tracing_count() == 1
    assert backend._forward.experimental_get_tracing_count() == 1
    assert len(backend._predict_fns) == 1  # one compiled predictor call, for one model and shape
    # explanations run their graphs on the calling thread (no fallback to the default executor)
    (_, predict_fn), = backend._predict_fns.values()
    assert backend._forward_fn.inline and backend._forward_fn._inline_works
    assert predict_fn.inline and predict_fn._inline_works


def test_a_keras_model_can_be_used_black_box(pima, keras_pima):
    _, X_train, X_test, _, _ = pima
    explainer = CounteRGAN(keras_pima, (1, 8), method="black-box", train_steps=300, verbose=False).fit(X_train)
    assert not explainer.white_box and explainer.meta["type"] == ["blackbox", "tensorflow"]
    assert explainer.backend_.predictor is None  # no gradients of the model are used
    assert explainer.backend_.network.discriminator_outputs == 2  # one realism score per target class
    e = explainer.explain(X_test)
    np.testing.assert_allclose(e.orig_proba, keras_pima(X_test).numpy(), atol=1e-6)
    assert np.mean(e.success) > 0.7


def test_weights_round_trip_and_have_stable_keys(pima, keras_pima, keras_whitebox):
    _, X_train, X_test, _, _ = pima
    weights = keras_whitebox.backend_.get_weights()
    assert weights and all(k.startswith(("generator/", "discriminator/")) for k in weights)
    assert "generator/head/kernel" in weights
    other = CounteRGAN(keras_pima, (1, 8), train_steps=3, seed=5, verbose=False).fit(X_train)
    assert set(other.backend_.get_weights()) == set(weights)  # keys do not depend on Keras's name counters
    assert not np.array_equal(other.explain(X_test).cf["X"], keras_whitebox.explain(X_test).cf["X"])
    other.backend_.set_weights(weights)
    np.testing.assert_array_equal(other.explain(X_test).cf["X"], keras_whitebox.explain(X_test).cf["X"])
    # get_weights returns copies: changing them changes nothing in the network
    weights["generator/head/kernel"] += 1.0
    assert not np.array_equal(weights["generator/head/kernel"], other.backend_.get_weights()["generator/head/kernel"])
    with pytest.raises(ValueError, match="missing.*head/bias"):
        other.backend_.set_weights({k: v for k, v in weights.items() if k != "generator/head/bias"})
    before = other.backend_.get_weights()
    with pytest.raises(ValueError, match="has shape"):
        other.backend_.set_weights({**weights, "discriminator/head/bias": np.zeros(3, np.float32)})
    for key, value in other.backend_.get_weights().items():  # a refused update writes nothing
        np.testing.assert_array_equal(value, before[key])


def test_reset_predictor_recompiles_the_generator_step(pima, keras_pima):
    _, X_train, X_test, _, _ = pima
    explainer = CounteRGAN(keras_pima, (1, 8), train_steps=5, verbose=False).fit(X_train)
    backend = explainer.backend_
    # the same classifier with its classes swapped: the white-box term must now use it
    swapped = tf.keras.Model(keras_pima.inputs, tf.reverse(keras_pima.outputs[0], axis=[-1]))
    step_before = backend._g_step_fn
    explainer.reset_predictor(swapped)
    assert backend.predictor is swapped and backend._g_step_fn is not step_before
    e = explainer.explain(X_test[:20])
    np.testing.assert_allclose(e.orig_proba, keras_pima(X_test[:20]).numpy()[:, ::-1], atol=1e-6)
    with pytest.raises(ValueError, match="must be a model of that framework"):
        explainer.reset_predictor(lambda x: keras_pima(x).numpy())


def test_user_keras_networks_replace_the_defaults(pima, keras_pima):
    _, X_train, X_test, _, _ = pima
    layers = tf.keras.layers
    x_std, onehot, mask = tf.keras.Input((8,)), tf.keras.Input((2,)), tf.keras.Input((8,))
    h = layers.Dense(32, activation="tanh")(layers.Concatenate()([x_std, onehot, mask]))
    generator = tf.keras.Model([x_std, onehot, mask], layers.Dense(8, kernel_initializer="zeros")(h))
    discriminator = tf.keras.Sequential([tf.keras.Input((8,)), layers.Dense(16, activation="relu"), layers.Dense(1)])
    explainer = CounteRGAN(keras_pima, (1, 8), generator=generator, discriminator=discriminator, train_steps=200,
                           verbose=False).fit(X_train)
    assert explainer.backend_.generator is generator
    assert np.mean(explainer.explain(X_test).success) > 0.5


def test_networks_of_another_framework_are_rejected(pima, keras_pima):
    _, X_train, _, _, _ = pima
    with pytest.raises(ValueError, match="tensorflow backend needs the generator to be a tf.keras.Model"):
        CounteRGAN(keras_pima, (1, 8), generator=lambda x, t, m: x, discriminator=lambda x: x, train_steps=1,
                   verbose=False).fit(X_train)


def test_inside_a_graph_block_the_backend_explains_what_to_do(pima, keras_pima, keras_whitebox):
    _, X_train, X_test, _, _ = pima
    with tf.Graph().as_default():
        with pytest.raises(EagerExecutionRequiredError, match=r"inside a `tf.Graph\(\).as_default\(\)` block"):
            keras_whitebox.explain(X_test[:1])
        with pytest.raises(EagerExecutionRequiredError, match="private graph and session"):
            CounteRGAN(keras_pima, (1, 8), train_steps=1, verbose=False).fit(X_train)
    keras_whitebox.explain(X_test[:1])  # and outside it, everything works again


_EAGER_OFF = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    from alibi_countergan import CounteRGAN
    tf.compat.v1.disable_eager_execution()
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2, activation="softmax")])
    try:
        CounteRGAN(model, (1, 4), train_steps=1, verbose=False).fit(np.random.default_rng(0).random((20, 4)))
    except Exception as err:
        print(type(err).__name__)
        print(err)
        sys.exit(0)
    sys.exit("no error")
""")


def test_with_eager_execution_disabled_the_error_says_why_and_how_to_run_both():
    # disable_eager_execution is process-wide and cannot be undone: run it in a child process
    result = subprocess.run([sys.executable, "-c", _EAGER_OFF], capture_output=True, text=True, cwd=REPO,
                            env={"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("EagerExecutionRequiredError")
    assert "`tf.compat.v1.disable_eager_execution()` was called in this process" in result.stdout
    assert "tf.compat.v1.Session(graph=graph)" in result.stdout and "sess=sess" in result.stdout
    assert "symbolic" not in result.stdout.lower()


def test_cfproto_in_a_private_graph_between_two_countergan_runs(pima, keras_pima):
    """alibi's TF1 CounterfactualProto and CounteRGAN's eager TensorFlow 2 in one process."""
    from alibi.explainers import CounterfactualProto

    _, X_train, X_test, _, _ = pima
    before = CounteRGAN(keras_pima, (1, 8), train_steps=150, verbose=False, seed=0).fit(X_train)
    first = before.explain(X_test[:20])
    unexplained = CounteRGAN(keras_pima, (1, 8), train_steps=150, verbose=False, seed=0).fit(X_train)

    # the documented pattern: a private graph and session; the Keras model is rebuilt inside it
    weights = keras_pima.get_weights()
    graph = tf.Graph()
    with graph.as_default():
        sess = tf.compat.v1.Session(graph=graph)
        tf.compat.v1.keras.backend.set_session(sess)
        model = KERAS.mlp(8, 2, X_train)
        model.set_weights(weights)
        cf = CounterfactualProto(model, (1, 8), feature_range=(X_train.min(0), X_train.max(0)), max_iterations=30,
                                 c_init=1.0, c_steps=2, use_kdtree=True, theta=10.0, sess=sess)
        cf.fit(X_train)
        proto = cf.explain(X_test[:1])
        sess.close()
    assert proto.cf is not None and proto.cf["X"].shape == (1, 8)
    assert int(proto.cf["class"]) != int(proto.orig_class)

    # Keras turned its classes into their TF1 versions inside the graph: the explainers fitted
    # before explain (the second one traces its forward pass only now), and a new one fits
    np.testing.assert_array_equal(before.explain(X_test[:20]).cf["X"], first.cf["X"])
    np.testing.assert_array_equal(unexplained.explain(X_test[:20]).cf["X"], first.cf["X"])
    after = CounteRGAN(keras_pima, (1, 8), train_steps=150, verbose=False, seed=0).fit(X_train)
    np.testing.assert_allclose(after.explain(X_test[:20]).cf["X"], first.cf["X"], rtol=1e-5, atol=1e-5)
    assert np.mean(after.explain(X_test).success) > 0.5
