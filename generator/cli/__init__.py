"""The ``hapta-gen`` command line (Typer): ``main`` (the app, ``build``), ``schema`` (``schema pull``
and ``schema diff``) and ``failure`` (how every command reports an error).

Run it as ``hapta-gen`` or ``python -m hapta_gen.cli``."""
