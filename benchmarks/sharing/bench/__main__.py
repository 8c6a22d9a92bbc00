"""`python -m benchmarks.sharing.bench ...` here, and `python -m bench ...` in the cluster Job."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
