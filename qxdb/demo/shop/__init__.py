"""A small example service, written into the demo workspace by ``qxdb demo``.

Everything here is ordinary service code built with qxdb: tables from the column helpers,
plain dataclass entities, an aggregate that records integration events, repositories.
"""
