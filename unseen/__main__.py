"""``python -m unseen`` runs the command line."""

import sys

from unseen.cli import main

sys.exit(main())
