"""``python -m benchmarks.compiled``: see ``benchmarks.compiled.cli``."""

import sys

from benchmarks.compiled.cli import main

if __name__ == "__main__":
    sys.exit(main())
