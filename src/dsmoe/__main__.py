"""`python -m dsmoe ...` runs the `dsmoe` command, for launchers that start modules with -m (torchrun)."""

import sys

from dsmoe.cli.main import main

sys.exit(main())
