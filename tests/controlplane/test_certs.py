"""The generated PKI works for mutual TLS exactly as kube-apiserver and kubectl use it."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest

from . import certs


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> certs.Pki:
    return certs.issue(tmp_path_factory.mktemp("pki"))


def _handshake(pki: certs.Pki, server_name: str, client: tuple[Path, Path] | None = None) -> dict[str, Any]:
    """Serve with the serving cert, requiring a client cert (the admin's unless ``client`` names another
    cert and key); return what the server saw of the client."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pki.serving_cert, pki.serving_key)
    server_context.load_verify_locations(pki.ca_cert)
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.create_default_context(cafile=str(pki.ca_cert))
    client_context.load_cert_chain(*(client or (pki.admin_cert, pki.admin_key)))
    seen: dict[str, Any] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            connection, _ = listener.accept()
            try:
                with server_context.wrap_socket(connection, server_side=True) as tls:
                    seen.update(tls.getpeercert() or {})
                    tls.sendall(b"ok")
            except ssl.SSLError:  # the client rejected us; its side of the handshake raises for the test
                connection.close()

        thread = threading.Thread(target=serve)
        thread.start()
        with (
            socket.create_connection(listener.getsockname(), timeout=5) as raw,
            client_context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            assert tls.recv(2) == b"ok"
        thread.join(timeout=5)
    return seen


@pytest.mark.parametrize("server_name", ["127.0.0.1", "localhost"])
def test_admin_and_server_authenticate_each_other(pki: certs.Pki, server_name: str) -> None:
    client = _handshake(pki, server_name)
    subject = {key: value for rdn in client["subject"] for key, value in rdn}
    assert subject == {"organizationName": "system:masters", "commonName": "admin"}


def test_the_controller_manager_has_its_own_identity_outside_system_masters(pki: certs.Pki) -> None:
    client = _handshake(pki, "127.0.0.1", (pki.controller_manager_cert, pki.controller_manager_key))
    subject = {key: value for rdn in client["subject"] for key, value in rdn}
    assert subject == {"commonName": "system:kube-controller-manager"}


def test_other_names_fail_hostname_verification(pki: certs.Pki) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(pki, "example.com")


def test_private_keys_are_owner_only_and_sec1_encoded(pki: certs.Pki) -> None:
    keys = (pki.ca_key, pki.serving_key, pki.admin_key, pki.controller_manager_key, pki.service_account_key)
    for key in keys:
        assert key.stat().st_mode & 0o077 == 0
        assert key.read_text().startswith("-----BEGIN EC PRIVATE KEY-----")
    assert sorted(path.name for path in Path(pki.directory).iterdir()) == [
        "admin.crt", "admin.key", "apiserver.crt", "apiserver.key", "ca.crt", "ca.key",
        "kube-controller-manager.crt", "kube-controller-manager.key", "sa.key",
    ]  # fmt: skip
