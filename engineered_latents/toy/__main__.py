"""`python -m engineered_latents.toy`: the same as `python -m engineered_latents train-toy`."""

import sys

from .cli import main

sys.exit(main())
