"""The data and the Keras classifier shared by the two migration scripts (COMPAS, shipped with the package).

As in alibi's tabular counterfactual examples, numerical features are scaled to [-1, 1] and
categorical features are one-hot encoded (``cat_vars`` maps each group's first column to its size).
"""

from typing import Tuple

import numpy as np
import tensorflow as tf

from alibi_countergan.datasets import TabularData, load_compas


def load_data() -> Tuple[TabularData, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(data, X_train, X_test, y_train, y_test)`` with numerical columns scaled to [-1, 1]."""
    data = load_compas()
    X_train, X_test, y_train, y_test = data.split(0.2, seed=0)
    n_numerical = min(data.cat_vars)  # the one-hot groups follow the numerical columns
    low, high = X_train[:, :n_numerical].min(0), X_train[:, :n_numerical].max(0)

    def scale(X: np.ndarray) -> np.ndarray:
        X = X.copy()
        X[:, :n_numerical] = 2 * (X[:, :n_numerical] - low) / (high - low) - 1
        return X

    return data, scale(X_train), scale(X_test), y_train, y_test


def build_model(n_features: int) -> tf.keras.Model:
    """A small MLP returning class probabilities (label 1: did not reoffend)."""
    inputs = tf.keras.Input(shape=(n_features,))
    h = tf.keras.layers.Dense(32, activation="relu")(inputs)
    h = tf.keras.layers.Dense(32, activation="relu")(h)
    outputs = tf.keras.layers.Dense(2, activation="softmax")(h)
    model = tf.keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
