"""KServe v2 and TF Serving request/response bodies."""

from __future__ import annotations

import numpy as np
import pytest

from roma.protocol import (
    ProtocolError,
    decode_tfserving_request,
    decode_v2_request,
    encode_tfserving_response,
    encode_v2_response,
    random_v2_request,
)


def test_v2_round_trip() -> None:
    body = random_v2_request((4, 4, 1), seed=1)
    body["id"] = "req-7"
    batch, request_id = decode_v2_request(body, (4, 4, 1))
    assert batch.shape == (1, 4, 4, 1)
    assert batch.dtype == np.float32
    assert request_id == "req-7"
    out = encode_v2_response("m", np.ones((1, 3)), "probs", request_id)
    assert out["id"] == "req-7"
    assert out["outputs"][0] == {"name": "probs", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 1.0, 1.0]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "inputs"),
        ({"inputs": [{"shape": [1, 2], "datatype": "BYTES", "data": ["a"]}]}, "datatype"),
        ({"inputs": [{"shape": [1, 5], "datatype": "FP32", "data": [1, 2]}]}, "does not fill"),
        ({"inputs": [{"shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}, "does not match"),
    ],
)
def test_v2_rejects_with_a_reason(body: object, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_v2_request(body, (4,))


def test_tfserving_row_and_columnar_forms() -> None:
    batch, form = decode_tfserving_request({"instances": [[1, 2], [3, 4]]}, (2,))
    assert batch.shape == (2, 2)
    assert encode_tfserving_response(np.zeros((2, 1)), form) == {"predictions": [[0.0], [0.0]]}
    batch, form = decode_tfserving_request({"inputs": {"x": [1, 2]}}, (2,))
    assert batch.shape == (1, 2)  # a single instance gets a batch axis
    assert "outputs" in encode_tfserving_response(np.zeros((1, 1)), form)
    with pytest.raises(ProtocolError, match="instances"):
        decode_tfserving_request({"rows": []}, (2,))
