"""``python -m hapta_gen.cli``: the same as the ``hapta-gen`` command."""

from .main import main

main()
