"""Stage 2, the intermediate representation: ``analyze`` turns the input model and the generation
settings (``config``) into the IR (``model``), deciding every name (``naming``) and Python
annotation (``pytypes``)."""
