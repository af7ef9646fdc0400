"""vmclock: keep ZStack VM RTC clock track declared in Kubernetes and true in ZStack."""

__version__ = "0.1.0"
