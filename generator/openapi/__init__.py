"""Stage 3, the OpenAPI 3.1 document of the gateway, computed from the IR: ``document`` puts
together ``schemas``, ``paths`` (record operations), ``auth`` and ``shared`` (what every gateway has)."""
