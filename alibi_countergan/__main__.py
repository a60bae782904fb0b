"""``python -m alibi_countergan`` runs the demo (see :mod:`alibi_countergan.demo`)."""

from alibi_countergan.demo import main

raise SystemExit(main())
