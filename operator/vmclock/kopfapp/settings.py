"""kopf settings for production (design.md §4, operator-anchors.md §3.3-3.7).

- Our own finalizer (`vmclock.zstack.io/finalizer`) and our own annotation prefix for kopf's state,
  `operator.vmclock.zstack.io/...`. Not `vmclock.zstack.io/` itself: kopf 1.45 drops *every* annotation
  under its storage prefix from the diff it triggers handlers on (`AnnotationsProgressStorage.clear`), so the
  user-facing `vmclock.zstack.io/paused` and `.../reconcile-requested-at` would never trigger anything.
- kopf's diff base (its `last-handled-configuration` annotation) only on ZStackConnections: policies'
  events are filtered by our own predicates (triggers.py), so kopf writes nothing on them (diffbase.py).
- The Argo CD tracking annotation is ignored outright: a GitOps re-label must never cause a reconcile.
- Events only where we post them explicitly; the reporting instance is the pod name.
- Bounded request/connect timeouts; the watch inactivity timeout is kept (it heals silent watch stalls).
"""

from __future__ import annotations

import os
import socket

import kopf

from vmclock.engine.spec import GROUP
from vmclock.kopfapp.diffbase import DiffBaseOfKinds

FINALIZER = f"{GROUP}/finalizer"
POLICY_KIND = "VmClockPolicy"
STATE_PREFIX = f"operator.{GROUP}"
ARGOCD_TRACKING_ID = ("metadata", "annotations", "argocd.argoproj.io/tracking-id")


def reporting_instance() -> str:
    return os.environ.get("POD_NAME") or socket.gethostname()


def build_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STATE_PREFIX)
    settings.persistence.diffbase_storage = DiffBaseOfKinds(
        kopf.AnnotationsDiffBaseStorage(
            prefix=STATE_PREFIX, key="last-handled-configuration", ignored_fields=[ARGOCD_TRACKING_ID]
        ),
        without=[POLICY_KIND],
    )
    settings.posting.loggers = False
    settings.posting.reporting_component = "vmclock"
    settings.posting.reporting_instance = reporting_instance()
    settings.networking.request_timeout = 60.0
    settings.networking.connect_timeout = 10.0
    settings.watching.connect_timeout = 10.0
    settings.watching.server_timeout = 300  # kopf sends it as timeoutSeconds, which must be an integer
    settings.process.ultimate_exiting_timeout = 25.0
    return settings
