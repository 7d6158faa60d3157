# Migrations of this service, laid down by `qxdb migrate init`.
#
# There is no database URL in this file, on purpose: env.py takes it from QX_DB__URL
# (or `qxdb --database-url ...`, or `alembic -x database_url=...`), through
# qxdb.DatabaseSettings, so one folder serves every environment.
#
#   qxdb migrate up          what a deploy runs (under the migration lock)
#   alembic -c ${config_path} upgrade head
#                            plain Alembic works too (and takes the same lock)

[alembic]
script_location = %(here)s
# The project root, so env.py can import the models named below.
prepend_sys_path = ${prepend_sys_path}
path_separator = os
file_template = %%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s
truncate_slug_length = 40

[qxdb]
# The models to migrate towards: package.module:attribute of a sqlalchemy MetaData.
metadata = ${metadata}
# The database this project is for. With QX_DB__URL unset, qxdb refuses to run these
# migrations (or any command) on the embedded SQLite file unless this says sqlite.
dialect = ${dialect}

# Logging, used when plain `alembic` runs env.py (qxdb reports on its own).
[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
