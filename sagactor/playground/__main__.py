"""``python -m sagactor.playground [DB] [--module M] [--script FILE]``: ``sagactor play``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(["play", *sys.argv[1:]]))
