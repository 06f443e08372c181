"""`python -m brainlearn ...`: the CLI, also the entry point torchrun starts in every process."""

import sys

from .cli import main

sys.exit(main())
