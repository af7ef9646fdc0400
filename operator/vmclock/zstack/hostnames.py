"""An endpoint's host exactly as the resolver will look it up, so that checks and connections agree.

Every check of where credentials may go (the Secret's allow-list, `--allowed-endpoint` globs and CIDRs)
compares host names, and later the resolver looks one up. Unicode makes those two different strings:
IDNA (UTS-46) maps U+3002, U+FF0E and U+FF61 to `.` and fullwidth digits to ASCII ones, so
`evil<U+3002>com` would pass a single-label glob and then resolve as `evil.com`, and fullwidth `10.0.0.1`
would pass as a name and connect to 10.0.0.1. Python's resolver (IDNA 2003) and yarl (UTS-46) do not even
map every name alike (`straße`). So a host is normalized once, here, to the ASCII form (A-labels) that is
then both checked and connected to, and a name whose normalized form reads differently from how it is
written is refused outright.
"""

from __future__ import annotations

import ipaddress
import re

import idna

# DNS labels as resolvers take them (`_` appears in real internal names); no `%`, no spaces, no escapes.
_ASCII_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")
_MAX_NAME = 253


def numeric_name(host: str) -> bool:
    """`10.1`, `167772161`, `0x0a.0.0.1`: not IP literals to `ipaddress`, yet the C resolver reads them as
    IPv4 addresses (inet_aton). No real DNS name ends in such a label."""
    last = host.rsplit(".", 1)[-1]
    return last.isdigit() or last.startswith("0x")


def resolver_host(written: str) -> str:
    """`written` (a URL's host, without IPv6 brackets) as looked up: an IP literal compressed, a name in
    lower-case ASCII without its trailing dot. ValueError says why a host cannot be used as written."""
    host = written.lower().removesuffix(".")
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    if not host.isascii():
        try:
            ascii_form = idna.encode(host, uts46=True).decode("ascii")
            unicode_form = idna.decode(ascii_form)
        except idna.IDNAError:
            raise ValueError(f"host {written!r} is not a valid internationalized domain name") from None
        if unicode_form != host:
            raise ValueError(
                f"host {written!r} is written with look-alike characters: the resolver would look up "
                f"{ascii_form!r}; write that instead"
            )
        host = ascii_form
    if len(host) > _MAX_NAME or not _ASCII_NAME.match(host):
        raise ValueError(f"host {written!r} is not a DNS name (letters, digits, '-' and '_' between dots)")
    if numeric_name(host):
        raise ValueError(
            f"host {written!r} ends in a number, which resolvers read as an IPv4 address; write the address "
            "as four decimal parts (like 10.0.0.1)"
        )
    return host
