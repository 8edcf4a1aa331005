"""``python -m devstack.consul_double``: serve a generated cluster until Ctrl-C."""

import sys

from devstack.consul_double.cli import main

sys.exit(main())
