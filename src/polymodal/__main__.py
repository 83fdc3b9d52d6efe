"""``python -m polymodal`` (what torchrun launches) runs the command line."""

import sys

from polymodal.cli import main

sys.exit(main())
