"""The test suite, one package: helpers are imported as ``tests.helpers.<name>`` (pytest puts the
repository root on sys.path: ``pythonpath`` in pyproject.toml)."""
