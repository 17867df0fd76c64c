"""``python -m recommender <command>``: the command line (``recommender.cli``)."""

import sys

from recommender.cli import main

if __name__ == "__main__":
    sys.exit(main())
