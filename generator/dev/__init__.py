"""For development and the demo: a real PocketBase server (``pbserver``), the postly example's seed
data (``seed``) and ``hapta-gen demo``."""
