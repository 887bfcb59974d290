"""Stage 4, the output files: ``render`` (templates and the OpenAPI document), ``pytypes`` (the
IR's types as Python annotations), the DO-NOT-EDIT ``header``, ``formatting`` (black) and ``writer`` (write or ``--check`` against disk)."""
