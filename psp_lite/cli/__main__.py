"""`python -m psp_lite.cli`: the same as the `psp-lite` command."""

import sys

from psp_lite.cli import main

sys.exit(main())
