"""The global model: a user's ``module:function`` builder, made ready for federated training."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


class BuilderError(ValueError):
    """The model builder cannot be imported or does not return a Keras model."""


def load_builder(reference: str) -> Callable[[], Any]:
    """Import ``module:function``.

    Raises:
        BuilderError: When the module or the function is missing.
    """
    module_name, _, function_name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BuilderError(f"cannot import model builder module {module_name!r}: {exc}") from exc
    builder = getattr(module, function_name, None)
    if not callable(builder):
        raise BuilderError(f"{module_name!r} has no function {function_name!r}")
    return builder  # type: ignore[no-any-return]


def build_model(reference: str) -> tuple[Any, Any]:
    """Build a fresh, uncompiled Keras model and the loss to train it with.

    A compiled model is cloned (TFF wants uncompiled models) and keeps its loss; otherwise the
    loss is sparse categorical cross-entropy, on probabilities when the last layer is a
    softmax and on logits otherwise.

    Returns:
        ``(model, loss)``.

    Raises:
        BuilderError: When the builder does not return a Keras model.
    """
    import tensorflow as tf

    model = load_builder(reference)()
    if not isinstance(model, tf.keras.Model):
        raise BuilderError(f"{reference} returned {type(model).__name__}, not a Keras model")
    loss: Any = None
    if getattr(model, "_is_compiled", False):
        loss = tf.keras.losses.get(model.loss) if model.loss is not None else None
        weights = model.get_weights()
        model = tf.keras.models.clone_model(model)
        model.set_weights(weights)
    if loss is None:
        activation = getattr(model.layers[-1], "activation", None)
        probabilities = activation is tf.keras.activations.softmax
        loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)
    return model, loss


def evaluate(model: Any, loss: Any, x: Any, y: Any) -> tuple[float, float]:
    """Accuracy and mean loss of ``model`` on ``(x, y)``."""
    import numpy as np

    outputs = model(x, training=False)
    predicted = np.argmax(np.asarray(outputs), axis=1)
    accuracy = float(np.mean(predicted == np.asarray(y)))
    return accuracy, float(loss(y, outputs))
