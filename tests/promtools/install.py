#!/usr/bin/env python3
"""Install the pinned Prometheus + promtool into the cache (a no-op when installed): `make prometheus`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from promtools import main

if __name__ == "__main__":
    sys.exit(main())
