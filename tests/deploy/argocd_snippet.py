"""Generates deploy/argocd/argocd-cm.yaml from the standalone Lua files under deploy/argocd/.

The Lua files (Argo CD's ``resource_customizations`` layout, tested with its ``health_test.yaml`` and
``action_test.yaml`` files) are the source; the ConfigMap only embeds them verbatim as YAML literal blocks.
Regenerate after editing a ``.lua`` file:

    .venv/bin/python tests/deploy/argocd_snippet.py
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "deploy" / "argocd"
SNIPPET = ARGOCD / "argocd-cm.yaml"

HEADER = """\
# Argo CD customizations for vmclock.zstack.io: health of VmClockPolicy and ZStackConnection, and the
# "Reconcile now" action on VmClockPolicy. Merge into Argo CD's argocd-cm, for example:
#   kubectl -n argocd patch configmap argocd-cm --patch-file deploy/argocd/argocd-cm.yaml
# GENERATED from deploy/argocd/{health,actions}/**/*.lua by tests/deploy/argocd_snippet.py; edit those files
# and regenerate (a test fails when this file and the Lua files differ).
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
"""


def literal(text: str, indent: str) -> str:
    """``text`` as the body of a YAML ``|`` block at ``indent`` (blank lines stay empty)."""
    return "".join(f"{indent}{line}\n" if line else "\n" for line in text.splitlines())


def group_kinds(kind_of: str) -> list[Path]:
    """``<group>/<Kind>`` directories under deploy/argocd/<kind_of>/, sorted."""
    return sorted(path for path in (ARGOCD / kind_of).glob("*/*") if path.is_dir())


def key(kind_of: str, directory: Path) -> str:
    return f"resource.customizations.{kind_of}.{directory.parent.name}_{directory.name}"


def actions_value(directory: Path) -> str:
    """The nested YAML Argo CD expects under ``resource.customizations.actions.<group_kind>``."""
    value = "discovery.lua: |\n" + literal((directory / "discovery.lua").read_text(), "  ") + "definitions:\n"
    for script in sorted(directory.glob("*/action.lua")):
        value += f"  - name: {script.parent.name}\n    action.lua: |\n" + literal(
            script.read_text(), "      "
        )
    return value


def render_snippet() -> str:
    text = HEADER
    for directory in group_kinds("health"):
        text += f"  {key('health', directory)}: |\n" + literal((directory / "health.lua").read_text(), "    ")
    for directory in group_kinds("actions"):
        text += f"  {key('actions', directory)}: |\n" + literal(actions_value(directory), "    ")
    return text


if __name__ == "__main__":
    SNIPPET.write_text(render_snippet())
