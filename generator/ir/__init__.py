"""Stage 2, the intermediate representation: ``analyze`` turns the input model and the generation
settings (``config``) into the IR (``model``), deciding every name (``naming``) and every field's
type in each model (``fieldtypes``, as the structured ``types.TypeIR`` that later stages print)."""
