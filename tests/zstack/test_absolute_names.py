"""A short endpoint name never resolves through the pod's DNS search path (zstack/dns.py).

The system resolver itself is under test, so the scenario runs in its own user, network and mount
namespaces (`unshare`, no privileges needed): a pod-like resolv.conf bind-mounted over /etc/resolv.conf
sends its queries to a DNS server on 127.0.0.1 that search_path_probe.py runs there. Nothing leaves the
private loopback.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).with_name("search_path_probe.py")
RESOLV_CONF = "nameserver 127.0.0.1\nsearch tenant-b.svc.cluster.local svc.cluster.local\noptions ndots:5\n"


def certificate_for(name: str, directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for `name` only (no IP address): TLS passes only against the name."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}", "-days", "1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_a_short_name_is_looked_up_as_written_not_through_the_search_path(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(RESOLV_CONF)
    cert, key = certificate_for("zstack.corp", tmp_path)
    # An address besides loopback: glibc's AI_ADDRCONFIG (aiohttp asks for it) wants one to return IPv4.
    inside = " && ".join(
        [
            "ip link set lo up",
            "ip addr add 10.99.0.1/32 dev lo",
            f"mount --bind {shlex.quote(str(resolv))} /etc/resolv.conf",
            shlex.join([sys.executable, str(PROBE), str(cert), str(key)]),
        ]
    )
    run = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--net", "--mount", "sh", "-c", inside],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    # The hazard is real in this set-up: the name as the system resolves it is the planted Service.
    assert seen["bare_lookup"] == "127.0.0.2"
    # The client asked only for the absolute name and reached the management node, its TLS verified
    # against the name as written (the certificate has no other), with the Host header as written.
    assert set(seen["client_asked"]) == {"zstack.corp."}
    assert seen["client_reached"] == {"server": "127.0.0.3", "host": "zstack.corp:8443"}
