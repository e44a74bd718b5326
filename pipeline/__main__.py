"""``python -m pipeline`` is the same as the ``ltr`` command."""

import sys

from pipeline.cli import main

sys.exit(main())
