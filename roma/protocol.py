"""Request and response bodies of the two inference protocols the server speaks.

* KServe v2 Open Inference Protocol: ``POST /v2/models/{name}/infer`` with
  ``{"inputs": [{"name", "shape", "datatype", "data"}]}``; the reply has ``model_name``,
  ``id`` (echoed) and ``outputs`` in the same tensor form, ``data`` flattened row-major.
* TensorFlow Serving REST: ``POST /v1/models/{name}:predict`` with ``{"instances": [...]}``
  (row form) or ``{"inputs": ...}`` (columnar); the reply is ``{"predictions": [...]}`` or
  ``{"outputs": ...}`` respectively.

Both decode to a float32 array whose first axis is the batch; pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: KServe v2 datatypes we accept, with their numpy types.
V2_DATATYPES: dict[str, Any] = {
    "FP32": np.float32,
    "FP64": np.float64,
    "FP16": np.float16,
    "INT32": np.int32,
    "INT64": np.int64,
    "INT8": np.int8,
    "UINT8": np.uint8,
}


class ProtocolError(ValueError):
    """A request body that does not follow the protocol; the message says what is expected."""


def decode_v2_request(body: Any, input_shape: Sequence[int | None]) -> tuple[NDArray[Any], str | None]:
    """Decode a KServe v2 infer request into a batch.

    Args:
        body: Parsed JSON body.
        input_shape: Model input shape without the batch axis (None = any size).

    Returns:
        The batch as float32 and the request ``id`` (None when absent).

    Raises:
        ProtocolError: on a malformed body or a shape the model cannot take.
    """
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise ProtocolError('expected {"inputs": [{"name", "shape", "datatype", "data"}]}')
    if len(body["inputs"]) != 1:
        raise ProtocolError(f"this model takes one input tensor, got {len(body['inputs'])}")
    tensor = body["inputs"][0]
    if not isinstance(tensor, dict):
        raise ProtocolError("each input must be an object with name, shape, datatype, data")
    datatype = tensor.get("datatype", "FP32")
    if datatype not in V2_DATATYPES:
        raise ProtocolError(f"datatype {datatype!r} not supported; use one of {sorted(V2_DATATYPES)}")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError("shape must be a list of non-negative integers")
    try:
        array = np.asarray(tensor.get("data"), dtype=V2_DATATYPES[datatype]).reshape(shape)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"data does not fill shape {shape}: {exc}") from None
    request_id = body.get("id")
    return _check_shape(array.astype(np.float32), input_shape), (str(request_id) if request_id is not None else None)


def encode_v2_response(
    model_name: str, outputs: NDArray[Any], output_name: str, request_id: str | None
) -> dict[str, Any]:
    """A KServe v2 infer response for one output tensor."""
    response: dict[str, Any] = {
        "model_name": model_name,
        "model_version": "1",
        "outputs": [
            {
                "name": output_name,
                "shape": list(outputs.shape),
                "datatype": "FP32",
                "data": outputs.astype(np.float32).ravel().tolist(),
            }
        ],
    }
    if request_id is not None:
        response["id"] = request_id
    return response


def decode_tfserving_request(body: Any, input_shape: Sequence[int | None]) -> tuple[NDArray[Any], str]:
    """Decode a TF Serving ``:predict`` request.

    Returns:
        The batch and the form, ``"instances"`` (row) or ``"inputs"`` (columnar), so the
        reply can use the matching key.
    """
    if not isinstance(body, dict):
        raise ProtocolError('expected {"instances": [...]} or {"inputs": ...}')
    for form in ("instances", "inputs"):
        if form in body:
            value = body[form]
            if isinstance(value, dict):
                if len(value) != 1:
                    raise ProtocolError("this model takes one named input")
                value = next(iter(value.values()))
            try:
                array = np.asarray(value, dtype=np.float32)
            except (ValueError, TypeError) as exc:
                raise ProtocolError(f"{form} is not a numeric tensor: {exc}") from None
            return _check_shape(array, input_shape), form
    raise ProtocolError('expected {"instances": [...]} or {"inputs": ...}')


def encode_tfserving_response(outputs: NDArray[Any], form: str) -> dict[str, Any]:
    """A TF Serving ``:predict`` response matching the request's form."""
    key = "predictions" if form == "instances" else "outputs"
    return {key: outputs.astype(np.float32).tolist()}


def _check_shape(array: NDArray[Any], input_shape: Sequence[int | None]) -> NDArray[Any]:
    expected = tuple(input_shape)
    if array.ndim == len(expected):  # a single instance without a batch axis
        array = array[np.newaxis, ...]
    if array.ndim != len(expected) + 1 or any(
        want is not None and got != want for got, want in zip(array.shape[1:], expected, strict=True)
    ):
        want_text = ",".join("?" if d is None else str(d) for d in expected)
        raise ProtocolError(f"input shape {list(array.shape)} does not match [batch,{want_text}]")
    return array


def random_v2_request(input_shape: Sequence[int | None], seed: int = 0) -> dict[str, Any]:
    """A valid one-instance v2 request for a model of ``input_shape`` (load generation)."""
    dims = [1, *[d if d is not None else 1 for d in input_shape]]
    data = np.random.default_rng(seed).random(dims, dtype=np.float32)
    return {"inputs": [{"name": "input", "shape": dims, "datatype": "FP32", "data": data.ravel().round(4).tolist()}]}
