"""postly's gateway extension (``hapta.yaml``: ``extensions: [postly_ext.feed]``)."""
