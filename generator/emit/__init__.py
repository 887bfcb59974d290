"""Stage 4, the output files: ``render`` (templates, the OpenAPI document and the DO-NOT-EDIT
header), ``formatting`` (black) and ``writer`` (write or ``--check`` against disk)."""
