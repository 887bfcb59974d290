"""hapta-gen: generate a fast, secure FastAPI gateway for a PocketBase schema."""

from .api import GenerationResult, generate
from .config import Config, load_config

__all__ = ["Config", "GenerationResult", "generate", "load_config"]
__version__ = "0.1.0"
