"""``python -m hfprune``: the ``hfprune`` command, for launchers that start modules (``accelerate launch -m hfprune``,
``torchrun -m hfprune``)."""

import sys

from hfprune.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
