"""``python -m bpttlab``: the same as the ``bpttlab`` command."""

from bpttlab._entry import run

run()
