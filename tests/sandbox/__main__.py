"""``python -m tests.sandbox`` (what ``make dev`` runs); ``--help`` lists the options."""

import sys
from pathlib import Path

# Import harness, controlplane and this package as top-level packages from tests/, exactly as pytest does.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.run import main

sys.exit(main())
