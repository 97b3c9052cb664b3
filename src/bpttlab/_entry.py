"""The ``bpttlab`` console script: importing the command line can itself be interrupted (Ctrl-C
while torch or typer load), so even that ends in one line, never a traceback."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from bpttlab.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("bpttlab: error: interrupted while starting; nothing was run\n")
        return 130
    return cli_main()


def run() -> None:
    sys.exit(main())
