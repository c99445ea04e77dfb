"""Small Keras models for scikit-learn's digits (64 features, 10 classes), for FederatedTraining examples."""

from __future__ import annotations

from typing import Any


def digits_mlp() -> Any:
    """One hidden layer of 32 units; outputs logits (uncompiled)."""
    import tensorflow as tf

    return tf.keras.Sequential(
        [
            tf.keras.layers.Input(shape=(64,)),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dense(10),
        ]
    )


def digits_softmax() -> Any:
    """Multinomial logistic regression with a softmax output, compiled (the loss is taken from it)."""
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.layers.Input(shape=(64,)), tf.keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    return model
