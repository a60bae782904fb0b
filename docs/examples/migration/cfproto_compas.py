"""Recourse on COMPAS with alibi's CounterfactualProto, written as in alibi's tabular examples.

Run: ``python docs/examples/migration/cfproto_compas.py`` (needs TensorFlow). The CounteRGAN
version of the same program is ``countergan_compas.py`` next to this file.
"""

import argparse
import time

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()  # alibi's TF1 explainers need graph mode, for the whole process

from alibi.explainers import CounterfactualProto  # noqa: E402

from compas_keras import build_model, load_data  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--people", type=int, default=5)
args = parser.parse_args()

tf.keras.utils.set_random_seed(0)
data, X_train, X_test, y_train, y_test = load_data()
model = build_model(X_train.shape[1])
model.fit(X_train, y_train, epochs=10, batch_size=128, verbose=0)

shape = (1,) + X_train.shape[1:]
n_features = X_train.shape[1] - sum(data.cat_vars.values()) + len(data.cat_vars)  # before one-hot encoding: 9
feature_range = (-np.ones((1, n_features)), np.ones((1, n_features)))  # with ohe=True: one entry per feature
explainer = CounterfactualProto(
    model, shape, beta=0.01, theta=10.0, cat_vars=data.cat_vars, ohe=True, use_kdtree=True,
    max_iterations=500, feature_range=feature_range, c_init=1.0, c_steps=5,
)
explainer.fit(X_train, d_type="abdm", disc_perc=[25, 50, 75])  # distances between categories

people = np.flatnonzero(model.predict(X_test, verbose=0).argmax(1) == 0)[: args.people]
for i in people:
    start = time.perf_counter()
    explanation = explainer.explain(X_test[i : i + 1], target_class=[1])  # one instance per call
    seconds = time.perf_counter() - start
    if explanation.cf is None:  # CFProto returns no counterfactual when its search fails
        print(f"person {i}: no counterfactual found ({seconds:.2f} s)")
        continue
    changed = np.flatnonzero(np.abs(explanation.cf["X"][0] - X_test[i]) > 1e-6)
    print(f"person {i}: P(not reoffend) {explanation.orig_proba[0, 1]:.2f} -> {explanation.cf['proba'][0, 1]:.2f}, "
          f"class {explanation.cf['class']}, changed {[data.feature_names[j] for j in changed]} ({seconds:.2f} s)")
