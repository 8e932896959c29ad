"""``python -m katoray``: the ``katoray`` command line."""
import sys

from katoray.cli import main

sys.exit(main())
