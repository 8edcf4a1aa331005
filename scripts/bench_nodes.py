"""Benchmark nodeview: old request path vs nodeview (``--mode baseline|compare|all``) or the
per-change cost as the cluster grows (``--mode cost``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
