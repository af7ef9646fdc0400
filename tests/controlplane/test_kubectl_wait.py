"""``kubectl wait`` through :class:`Kubectl` starts from a consistent read on every supported release."""

from __future__ import annotations

from .kubectl import Kubectl


def test_wait_streams_its_initial_state_instead_of_listing_the_watch_cache(
    kubectl: Kubectl, namespace: str
) -> None:
    """A list at resourceVersion=0 may predate an object just created; the wait would then fail NotFound."""
    kubectl("create", "configmap", "fresh", "--from-literal=state=new", namespace=namespace)
    waited = kubectl(
        "wait",
        "--for=jsonpath={.data.state}=never",
        "configmap/fresh",
        "--timeout=1s",
        "-v=6",
        namespace=namespace,
        check=False,
    )
    assert "timed out" in waited.stderr
    requests = [line for line in waited.stderr.splitlines() if "configmaps?" in line]
    assert requests, waited.stderr
    assert all("resourceVersion=0" not in line for line in requests), requests
    assert any("sendInitialEvents=true" in line for line in requests), requests
