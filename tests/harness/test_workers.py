"""Modules sharing a costly session fixture share an xdist worker; every other module keeps one of its own."""

from __future__ import annotations

from harness.workers import group_of, unlisted_users

SHARED = {
    "replayed_image": ("tests/deploy/test_image_steps.py", "tests/deploy/test_operator_as_serviceaccount.py")
}


def test_listed_modules_share_the_fixture_group_and_the_rest_are_their_own_group() -> None:
    groups = {
        nodeid: group_of(nodeid, SHARED)
        for nodeid in (
            "tests/deploy/test_image_steps.py::test_hadolint_reports_nothing",
            "tests/deploy/test_operator_as_serviceaccount.py::test_full_reconcile[a::b]",
            "tests/integration/test_e2e_core.py::test_one",
            "tests/integration/test_e2e_core.py::test_two",
            "tests/integration/test_crds.py::TestX::test_y[p]",
        )
    }
    assert set(groups.values()) == {
        "replayed_image",
        "tests/integration/test_e2e_core.py",
        "tests/integration/test_crds.py",
    }
    assert groups["tests/deploy/test_image_steps.py::test_hadolint_reports_nothing"] == "replayed_image"


def test_a_module_using_a_shared_fixture_without_being_listed_is_named() -> None:
    fixtures = {
        "tests/deploy/test_image_steps.py": {"replayed_image", "tmp_path"},
        "tests/deploy/test_new.py": {"controlplane", "replayed_image"},
        "tests/integration/test_crds.py": {"controlplane"},
    }
    assert unlisted_users(fixtures, SHARED) == ["tests/deploy/test_new.py uses replayed_image"]
