"""`python -m vmclock run ...` is the same as the `vmclock` console script."""

import sys

from vmclock.cli import main

sys.exit(main())
