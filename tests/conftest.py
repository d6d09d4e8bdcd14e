"""Root end-to-end tests.

`legacy_service/` is a c2casgiutils 0.14 service with its own test suite and its own pytest
configuration: `test_legacy_service.py` runs it in a subprocess (against c2c-all and against 0.14);
the root run never collects it directly.
"""

collect_ignore = ["legacy_service"]
