"""Credentials never leave the Secret: not in the operator's logs (even verbose), Events or status.

Covers both credential kinds (account password, sent as SHA-512 hex, and AccessKey signing) and a rejected
password, whose value must not appear in the AuthFailed message either.
"""

from __future__ import annotations

import json

import pytest

from harness import (
    POLICY,
    access_key_secret,
    account_secret,
    condition,
    condition_is,
    connection,
    policy,
    wait_for,
)
from harness.e2e import CONNECTION_NAME, E2E, READY_TIMEOUT, SECRET_NAME


@pytest.fixture(scope="module")
def operator_args() -> tuple[str, ...]:
    return ("--verbose",)  # debug logging is where request bodies and headers would leak


def test_no_secret_value_appears_in_logs_events_or_status(e2e: E2E) -> None:
    creds, endpoint = e2e.credentials, e2e.simulator.endpoint
    e2e.tenant.apply(
        e2e.account_secret(),
        connection(CONNECTION_NAME, endpoint, SECRET_NAME),
        access_key_secret("zstack-keys", creds.key_id, creds.key_secret, allow=endpoint),
        connection("keys", endpoint, "zstack-keys"),
        account_secret("zstack-wrong", creds.account, creds.wrong_password, allow=endpoint),
        connection("wrong", endpoint, "zstack-wrong"),
    )
    by_account, by_key, refused = (e2e.vms.take(2, track="host") for _ in range(3))
    e2e.tenant.apply(
        policy("by-account", "guest", by_account),
        policy("by-key", "guest", by_key, connection_name="keys"),
        policy("refused", "guest", refused, connection_name="wrong"),
    )

    e2e.tenant.wait_ready("by-account", timeout=READY_TIMEOUT)
    e2e.tenant.wait_ready("by-key", timeout=READY_TIMEOUT)
    wrong = wait_for(
        lambda: e2e.tenant.connection("wrong"),
        lambda c: condition_is(c, "Ready", "False", "AuthFailed"),
        timeout=READY_TIMEOUT,
        what="connection 'wrong' Ready=False/AuthFailed",
    )
    e2e.tenant.wait_policy(
        "refused",
        lambda p: condition_is(p, "Ready", "False", "ConnectionNotReady"),
        timeout=READY_TIMEOUT,
        what="policy on the refused connection Ready=False/ConnectionNotReady",
    )
    assert condition(wrong, "Ready")["message"]
    assert e2e.simulator.admin.tracks(by_account + by_key) == dict.fromkeys(by_account + by_key, "guest")
    assert e2e.simulator.admin.stats().writes_for(refused) == []

    # A session expiry and a re-login put more authentication traffic into the (verbose) log.
    e2e.simulator.admin.expire_sessions()
    e2e.tenant.merge_patch(POLICY, "by-account", {"spec": {"track": "host"}})
    e2e.tenant.wait_ready("by-account", timeout=READY_TIMEOUT)

    places = {
        "operator log": e2e.operator.log_text(),
        "events": e2e.kubectl("get", "events", "-A", "-o", "json").stdout,
        "policies and connections": e2e.kubectl(
            "get", "vmclockpolicies,zstackconnections", "-A", "-o", "json"
        ).stdout,
    }
    # The scan means something only if the log really holds debug output and the Events exist.
    assert '"severity": "debug"' in places["operator log"]
    assert json.loads(places["events"])["items"]
    leaks = {where: creds.leaks_in(text) for where, text in places.items() if creds.leaks_in(text)}
    assert leaks == {}
