"""``python -m bpttlab``: the same as the ``bpttlab`` command."""

import sys

from .cli import main

sys.exit(main())
