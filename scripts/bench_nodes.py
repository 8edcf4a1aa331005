"""Benchmark the old nodes request path against nodeview: ``--mode baseline|compare|all``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
