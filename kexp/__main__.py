"""`python -m kexp` runs the command line; Ctrl-C while it starts ends it like a command's."""

import sys

try:
    from kexp.cli import main
except KeyboardInterrupt:
    print("\nkexp: interrupted (Ctrl-C)", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
