"""``python -m rtrl_bench``: the ``rtrl-bench`` command line."""

import sys

from ._cli import main

sys.exit(main())
