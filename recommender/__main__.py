"""``python -m recommender <command>``: the command line (``recommender.cli``)."""

import sys

from recommender.cli import main

sys.exit(main())
