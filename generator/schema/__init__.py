"""Stage 1, the input: pull a live PocketBase schema, snapshot it, load any export shape into the
validated input model (``model``), and diff two schemas."""
