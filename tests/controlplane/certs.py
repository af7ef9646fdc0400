"""Throw-away PKI for one control plane, made with the ``openssl`` command (the stdlib cannot sign).

Fresh on every start and valid for two days: nothing long-lived exists that could leak or expire mid-run.
EC P-256 keys keep generation in the milliseconds.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

VALID_DAYS = "2"

_CA_EXTENSIONS = """\
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
"""
_LEAF_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
authorityKeyIdentifier = keyid
extendedKeyUsage = {usage}
"""
SERVING_SANS = "IP:127.0.0.1, DNS:localhost"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"


class CertificateError(RuntimeError):
    """openssl failed; the message carries its stderr (which never contains key material)."""


@dataclass(frozen=True)
class Pki:
    """Where each file of one control plane's PKI lives."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        """Client certificate of ``admin`` in ``system:masters`` (RBAC's built-in superuser group)."""
        return self.directory / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.directory / "admin.key"

    @property
    def controller_manager_cert(self) -> Path:
        """Client certificate of ``system:kube-controller-manager``, the user the built-in RBAC policy
        binds kube-controller-manager's own role to (never ``system:masters``)."""
        return self.directory / "kube-controller-manager.crt"

    @property
    def controller_manager_key(self) -> Path:
        return self.directory / "kube-controller-manager.key"

    @property
    def service_account_key(self) -> Path:
        """One EC private key: kube-apiserver signs SA tokens with it and derives the verifying key."""
        return self.directory / "sa.key"


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CertificateError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _new_key(path: Path) -> None:
    """SEC1 ("EC PRIVATE KEY"): kube-apiserver's SA key parser does not read PKCS#8 private keys."""
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path))
    path.chmod(0o600)


def _sign(
    pki: Pki, key: Path, cert: Path, subject: str, extensions: str, *, self_signed: bool = False
) -> None:
    """Make a CSR for ``key`` and sign it with the CA (or with itself for the CA)."""
    csr = cert.with_suffix(".csr")
    extfile = cert.with_suffix(".ext")
    extfile.write_text(extensions)
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    issuer = ["-signkey", str(key)] if self_signed else ["-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key)]
    _openssl(
        "x509", "-req", "-in", str(csr), *issuer, "-set_serial", f"0x{secrets.token_hex(16)}",
        "-days", VALID_DAYS, "-extfile", str(extfile), "-out", str(cert),
    )  # fmt: skip
    csr.unlink()
    extfile.unlink()


def issue(directory: Path) -> Pki:
    """Create CA, serving cert (CN=localhost, SAN 127.0.0.1/localhost), the admin's and
    kube-controller-manager's client certs and the SA key."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory)
    _new_key(pki.ca_key)
    _sign(pki, pki.ca_key, pki.ca_cert, "/CN=vmclock-controlplane-ca", _CA_EXTENSIONS, self_signed=True)
    _new_key(pki.serving_key)
    serving = _LEAF_EXTENSIONS.format(usage="serverAuth") + f"subjectAltName = {SERVING_SANS}\n"
    _sign(pki, pki.serving_key, pki.serving_cert, "/CN=localhost", serving)
    _new_key(pki.admin_key)
    client = _LEAF_EXTENSIONS.format(usage="clientAuth")
    _sign(pki, pki.admin_key, pki.admin_cert, "/O=system:masters/CN=admin", client)
    _new_key(pki.controller_manager_key)
    controller_manager = f"/CN={CONTROLLER_MANAGER_USER}"
    _sign(pki, pki.controller_manager_key, pki.controller_manager_cert, controller_manager, client)
    _new_key(pki.service_account_key)
    return pki
