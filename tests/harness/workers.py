"""How ``make test`` spreads test modules over pytest-xdist workers (``--dist loadfile``, refined).

A session fixture runs once per worker.  For the control plane that is the point (each worker its own), but
the replayed image costs minutes of pip installs, so the modules that use it share one worker.  Any other
module stays whole on one worker, as under plain ``loadfile``: its module fixtures (the e2e simulator and
operator) start once.  xdist's own ``loadgroup`` cannot express this with pytest 9 (it renames node ids,
which pytest 9 no longer lets it do), hence a scheduler; the controller never collects, so the sharing
modules are listed here and collection checks the list (:func:`unlisted_users`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from xdist.scheduler import LoadScopeScheduling

WORKER_SHARED_FIXTURES: Mapping[str, Collection[str]] = {
    "replayed_image": (
        "tests/deploy/test_image_steps.py",
        "tests/deploy/test_namespace_opt_in.py",
        "tests/deploy/test_operator_as_serviceaccount.py",
    ),
}


def group_of(nodeid: str, shared: Mapping[str, Collection[str]] = WORKER_SHARED_FIXTURES) -> str:
    """The worker group of a test: the shared fixture its module is listed under, else the module."""
    module = nodeid.split("::", 1)[0]
    return next((fixture for fixture, modules in shared.items() if module in modules), module)


def unlisted_users(
    fixtures_by_module: Mapping[str, Collection[str]],
    shared: Mapping[str, Collection[str]] = WORKER_SHARED_FIXTURES,
) -> list[str]:
    """``module uses fixture`` for each module that uses a shared fixture but is not listed under it."""
    return [
        f"{module} uses {fixture}"
        for module, fixtures in fixtures_by_module.items()
        for fixture, modules in shared.items()
        if fixture in fixtures and module not in modules
    ]


class ModuleGroupScheduling(LoadScopeScheduling):
    """``loadfile`` scheduling with the groups of :func:`group_of` as its units."""

    def _split_scope(self, nodeid: str) -> str:
        return group_of(nodeid)
