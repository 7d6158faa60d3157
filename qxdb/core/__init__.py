"""The standard-library-only layer of qxdb: defaults, identifier rules, settings parsing
and error classification, written once.

Both the SQLAlchemy modules of the library and the ``qxdb`` command import these
modules; the command does so without paying for SQLAlchemy or pydantic (its startup
targets depend on it). Nothing here may import anything but the standard library and
other ``qxdb.core`` modules; ``tests/unit/test_core_layer.py`` keeps it that way.

=================  ============================================================
defaults           every default a library entry point and a command option share
identifiers        plain SQL identifiers, ``schema.name``, outbox derived names
env                parsing of settings text (the previous cursor secrets list)
failures           "the database is unreachable" vs "a statement failed"
blocking           run a coroutine from synchronous code, even under a running loop
=================  ============================================================
"""
