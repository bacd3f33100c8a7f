"""``python -m prompt_plugins ...``: the ``prompt-plugins`` command line."""
import sys

from .cli import main

sys.exit(main())
