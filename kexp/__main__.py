"""`python -m kexp` runs the command line; Ctrl-C while it starts (imports, building the parser)
ends it like a command's: one line, exit 130."""

import sys

try:
    from kexp.cli import main

    code = main()
except KeyboardInterrupt:
    print("\nkexp: interrupted (Ctrl-C)", file=sys.stderr)
    code = 130
sys.exit(code)
