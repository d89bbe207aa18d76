"""`python -m kexp` runs the command line."""

import sys

from kexp.cli import main

sys.exit(main())
