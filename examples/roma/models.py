"""Keras models served by the example InferenceServices (random weights, no downloads).

``small_cnn``: a two-convolution image classifier on 28x28x1 inputs (light: a few ms per image
on one core). ``resnet_small``: a ResNet-style network of residual blocks on 32x32x3 inputs
(heavier: about ten times the work per image).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def small_cnn(seed: int = 0) -> Any:
    """A small convolutional classifier (28x28 greyscale in, 10 classes out)."""
    tf.keras.utils.set_random_seed(seed)
    layers = tf.keras.layers
    return tf.keras.Sequential(
        [
            layers.Input(shape=(28, 28, 1), name="image"),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Conv2D(128, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(128, 3, padding="same", activation="relu"),
            layers.Conv2D(128, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            layers.Dense(10, activation="softmax", name="probabilities"),
        ],
        name="small_cnn",
    )


def _residual_block(x: Any, filters: int, stride: int) -> Any:
    layers = tf.keras.layers
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    y = layers.BatchNormalization()(y)
    y = layers.ReLU()(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(shortcut)
        shortcut = layers.BatchNormalization()(shortcut)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def resnet_small(seed: int = 0) -> Any:
    """A ResNet-style classifier (32x32 colour in, 10 classes out): 3 stages of residual blocks."""
    tf.keras.utils.set_random_seed(seed)
    layers = tf.keras.layers
    inputs = layers.Input(shape=(32, 32, 3), name="image")
    x = layers.Conv2D(96, 3, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    stages = [(96, 1), (96, 1), (96, 1), (192, 2), (192, 1), (192, 1), (384, 2), (384, 1), (384, 1)]
    for filters, stride in stages:
        x = _residual_block(x, filters, stride)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return tf.keras.Model(inputs, outputs, name="resnet_small")
