"""Test support for services and for qxdb itself.

Enable the fixtures with ``pytest_plugins = ["qxdb.testing.plugin"]`` in a ``conftest.py``
(or ``-p qxdb.testing.plugin``). See :mod:`qxdb.testing.plugin` for the fixtures.
"""
