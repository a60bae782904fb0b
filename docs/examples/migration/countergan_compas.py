"""Recourse on COMPAS with CounteRGAN: the program of ``cfproto_compas.py``, migrated.

Run: ``python docs/examples/migration/countergan_compas.py`` (needs TensorFlow; with a PyTorch
model the code is the same).
"""

import argparse
import time

import numpy as np
import tensorflow as tf  # eager TensorFlow 2: do not call disable_eager_execution()

from alibi_countergan import CounteRGAN

from compas_keras import build_model, load_data

parser = argparse.ArgumentParser()
parser.add_argument("--people", type=int, default=5)
args = parser.parse_args()

tf.keras.utils.set_random_seed(0)
data, X_train, X_test, y_train, y_test = load_data()
model = build_model(X_train.shape[1])
model.fit(X_train, y_train, epochs=10, batch_size=128, verbose=0)

shape = (1,) + X_train.shape[1:]
feature_range = (-1.0, 1.0)  # scalars or arrays over the encoded columns; one-hot groups stay exact anyway
explainer = CounteRGAN(
    model, shape, l1_weight=0.1, cat_vars=data.cat_vars, ohe=True,
    train_steps=1000, feature_range=feature_range, seed=0, verbose=False,
)
start = time.perf_counter()
explainer.fit(X_train)  # trains the generator: the only slow step
print(f"fitted in {time.perf_counter() - start:.1f} s")

people = np.flatnonzero(model.predict(X_test, verbose=0).argmax(1) == 0)[: args.people]
for i in people:
    start = time.perf_counter()
    explanation = explainer.explain(X_test[i : i + 1], target_class=[1])  # same call, same fields
    seconds = time.perf_counter() - start
    if not explanation.success:  # CounteRGAN always returns a counterfactual; `success` says if it works
        print(f"person {i}: the counterfactual does not reach the target ({seconds:.4f} s)")
    changed = np.flatnonzero(np.abs(explanation.cf["X"][0] - X_test[i]) > 1e-6)
    print(f"person {i}: P(not reoffend) {explanation.orig_proba[0, 1]:.2f} -> {explanation.cf['proba'][0, 1]:.2f}, "
          f"class {explanation.cf['class']}, changed {[data.feature_names[j] for j in changed]} ({seconds:.4f} s)")

batch = explainer.explain(X_test[people], target_class=1)  # or a whole batch in one call
print(f"batch of {len(people)}: success {batch.success.tolist()}")
