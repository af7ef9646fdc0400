"""What selector policies select by, seeded on top of the base fleet: user tags, Paravirtualization VMs and
a small edge zone.

These draws come from a random stream of their own (keyed by the seed), after the base fleet is made, so
every fleet made before they existed keeps its uuids, names, states and tracks; only the labels are new.
"""

from __future__ import annotations

import random

from vmclock.simulator.inventory import Infra, Vm, random_uuid
from vmclock.simulator.usertags import UserTags

# Independent user-tag families: (tag or None, weight) each; a VM draws at most one tag per family.
TAG_FAMILIES: tuple[tuple[tuple[str | None, float], ...], ...] = (
    (("env::prod", 0.5), ("env::dev", 0.3), (None, 0.2)),
    (("team::a", 0.4), ("team::b", 0.3), (None, 0.3)),
    (("backup::daily", 0.25), (None, 0.75)),
)
PARAVIRTUALIZED_LINUX = 0.25  # share of Linux VMs that are Paravirtualization
EDGE_ZONE_SHARE = 0.15  # share of the fleet living in the edge zone


def label_fleet(seed: int, infra: Infra, vms: list[Vm], user_tags: UserTags) -> None:
    rng = random.Random(f"labels-{seed}")
    edge = infra.add_cluster(rng, random_uuid(rng))
    edge.hosts.append(random_uuid(rng))
    for vm in vms:
        if vm.platform == "Linux" and rng.random() < PARAVIRTUALIZED_LINUX:
            vm.change_platform("Paravirtualization", vm.last_op)
        if rng.random() < EDGE_ZONE_SHARE:
            vm.place(edge, rng.choice(edge.hosts))
        for family in TAG_FAMILIES:
            tag = _draw(rng, family)
            if tag is not None:
                user_tags.seed(vm.uuid, tag, random_uuid(rng))


def _draw(rng: random.Random, family: tuple[tuple[str | None, float], ...]) -> str | None:
    """One weighted pick with one random number (weights sum to 1); cheaper than `choices` at 10,000 VMs."""
    point = rng.random()
    for tag, weight in family:
        point -= weight
        if point < 0:
            return tag
    return family[-1][0]
