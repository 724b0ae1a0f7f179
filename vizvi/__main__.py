"""``python -m vizvi``."""

import sys

from vizvi.cli import main

sys.exit(main())
