"""The ``qxdb`` command: a thin shell over the ``qxdb`` library."""
