"""User tags on VMs (UserTagVO): what `q=__userTag__=<tag>` and `/v1/user-tags` query.

Tags are free text chosen by people (`env::prod`, `team::a`), which is why selector policies use them. A VM
carries each tag at most once here; ZStack's CreateUserTag is the only writer and the simulator's admin
routes stand in for it.
"""

from __future__ import annotations

from typing import Any

from vmclock.simulator.tracks import Row, tag_inventory


class UserTags:
    def __init__(self) -> None:
        self._by_vm: dict[str, dict[str, Row]] = {}

    def seed(self, vm_uuid: str, tag: str, row_uuid: str) -> None:
        self._by_vm.setdefault(vm_uuid, {})[tag] = Row.new(vm_uuid, tag, row_uuid)

    def add(self, vm_uuid: str, tag: str) -> None:
        """Idempotent: adding a tag the VM already carries keeps the existing row."""
        tags = self._by_vm.setdefault(vm_uuid, {})
        if tag not in tags:
            tags[tag] = Row.new(vm_uuid, tag)

    def remove(self, vm_uuid: str, tag: str) -> None:
        """KeyError when the VM does not carry the tag."""
        tags = self._by_vm.get(vm_uuid, {})
        if tag not in tags:
            raise KeyError(f"VM {vm_uuid} has no user tag {tag!r}")
        del tags[tag]
        if not tags:
            self._by_vm.pop(vm_uuid, None)

    def delete(self, vm_uuid: str) -> None:
        """Every tag of a VM that no longer exists."""
        self._by_vm.pop(vm_uuid, None)

    def tags_of(self, vm_uuid: str) -> list[str]:
        return list(self._by_vm.get(vm_uuid, ()))

    def tag_inventories(self) -> list[dict[str, Any]]:
        return [tag_inventory(row, "User") for tags in self._by_vm.values() for row in tags.values()]
