"""`python -m vista` runs the command line (the tests start it this way in a real process)."""

import sys

from vista.cli import main

sys.exit(main())
