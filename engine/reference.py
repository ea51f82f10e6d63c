"""Moved to ``engine.cli.reference`` in engine 0.3 (``python -m engine.cli.reference docs/reference.md``); this
path, and ``python -m engine.reference``, work with a DeprecationWarning until 0.4."""

import sys

from engine.deprecation import warn_moved

warn_moved("engine.reference")

from engine.cli.reference import *  # noqa: E402, F403
from engine.cli.reference import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
