"""Stage 4, the output files: ``render`` (templates and the OpenAPI document), the DO-NOT-EDIT
``header``, ``formatting`` (black) and ``writer`` (write or ``--check`` against disk)."""
