"""The request path for PocketBase's API as a chain of small pure-ASGI layers, one a module.

    observe → client IP → route → [rate limit] → [session] → [cache] → validate → forward

``chain.build`` assembles it from the settings; a layer that is switched off is not in the
chain. Each layer reads and writes the request's ``RequestState`` (``scope["hapta"]``).
"""
