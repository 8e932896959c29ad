"""``python -m katoray``: the ``katoray`` command line."""
import sys

from katoray.cli import console_main

sys.exit(console_main())
