"""The operator's Kubernetes client: credentials given as data leave nothing in the operator's small /tmp."""

from __future__ import annotations

import base64
import ssl
import subprocess
import tempfile
from pathlib import Path

import kopf
import pytest

from controllers.kube import KubeApi

SUBJECT = ["-subj", "/CN=mlscale-operator", "-days", "1"]


@pytest.fixture
def client_certificate(tmp_path: Path) -> tuple[bytes, bytes, bytes]:
    """A self-signed client certificate, its key and another key, as a kubeconfig holds them (PEM)."""
    key, cert, other = tmp_path / "key.pem", tmp_path / "cert.pem", tmp_path / "other.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", *SUBJECT, "-keyout", str(key)]
    subprocess.run([*command, "-out", str(cert)], check=True, capture_output=True)
    subprocess.run(["openssl", "genrsa", "-out", str(other), "2048"], check=True, capture_output=True)
    return cert.read_bytes(), key.read_bytes(), other.read_bytes()


async def test_a_client_certificate_given_as_data_leaves_no_files_behind(
    client_certificate: tuple[bytes, bytes, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator_tmp = tmp_path / "tmp"
    operator_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(operator_tmp))
    cert, key, _ = client_certificate
    info = kopf.ConnectionInfo(
        server="https://kubernetes.default.svc",
        certificate_data=base64.b64encode(cert),  # as in a kubeconfig's client-certificate-data
        private_key_data=key,
    )
    # The operator makes a client for each handler call: hundreds a day for a job that retries.
    for _ in range(5):
        api = KubeApi(info)
        await api.close()
    assert list(operator_tmp.iterdir()) == []


def test_a_key_that_does_not_match_its_certificate_is_refused(client_certificate: tuple[bytes, bytes, bytes]) -> None:
    cert, _, other_key = client_certificate
    info = kopf.ConnectionInfo(
        server="https://kubernetes.default.svc", certificate_data=cert, private_key_data=other_key
    )
    with pytest.raises(ssl.SSLError, match=r"(?i)key values mismatch"):
        KubeApi(info)
