"""``python -m benchmarks.suite``: see :mod:`benchmarks.suite.runner`."""

import sys

from benchmarks.suite.runner import main

sys.exit(main())
