"""The kopf layer: settings, handlers and the workers they call. Entry point: `build_registry(Runtime)`."""

from vmclock.kopfapp.registry import build_registry
from vmclock.kopfapp.runtime import Runtime
from vmclock.kopfapp.settings import build_settings

__all__ = ["Runtime", "build_registry", "build_settings"]
