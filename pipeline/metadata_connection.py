"""Which ML Metadata store a run and the query commands use: SQLite (default) or MySQL.

``metadata.mysql.host`` set selects ml_metadata's MySQL connection (a MySQL or
MariaDB server, as Kubeflow Pipelines deploys MLMD); the password is read from
the environment variable named by ``metadata.mysql.password_env``, never from
the config file. Otherwise the SQLite file at ``metadata_path``.

What the readers take (``pipeline.report.open_store``) is a ``MetadataTarget``:
a SQLite path (opened read-only) or a ``ConnectionConfig``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Union

from pipeline.config import Config, ConfigError

if TYPE_CHECKING:
    from ml_metadata.proto import metadata_store_pb2

MetadataTarget = Union[str, "metadata_store_pb2.ConnectionConfig"]


def uses_mysql(config: Config) -> bool:
    return bool(config.metadata.mysql.host)


def mysql_password(config: Config) -> str:
    """The password from ``metadata.mysql.password_env``; an unset variable is an error naming it."""
    name = config.metadata.mysql.password_env
    if not name:
        return ""
    password = os.environ.get(name)
    if password is None:
        raise ConfigError(
            f"metadata.mysql.password_env names the environment variable '{name}', which is not set "
            "(set it to the MySQL password, or set password_env: '' for an account without one)"
        )
    return password


def connection_config(config: Config) -> metadata_store_pb2.ConnectionConfig:
    """The ``ConnectionConfig`` for the pipeline's orchestrator (LocalDagRunner)."""
    from ml_metadata.proto import metadata_store_pb2

    if uses_mysql(config):
        mysql = config.metadata.mysql
        return metadata_store_pb2.ConnectionConfig(
            mysql=metadata_store_pb2.MySQLDatabaseConfig(
                host=mysql.host,
                port=mysql.port,
                database=mysql.database,
                user=mysql.user,
                password=mysql_password(config),
            )
        )
    os.makedirs(os.path.dirname(config.metadata_path) or ".", exist_ok=True)
    return metadata_store_pb2.ConnectionConfig(
        sqlite=metadata_store_pb2.SqliteMetadataSourceConfig(
            filename_uri=config.metadata_path,
            connection_mode=metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE,
        )
    )


def metadata_target(config: Config) -> MetadataTarget:
    """What readers open: the SQLite path (read-only there), or the MySQL connection."""
    return connection_config(config) if uses_mysql(config) else config.metadata_path


def describe(target: MetadataTarget) -> str:
    """``mysql://user@host:port/database`` or the SQLite path, for messages (no password)."""
    if isinstance(target, str):
        return target
    if target.HasField("mysql"):
        m = target.mysql
        return f"mysql://{m.user}@{m.host}:{m.port}/{m.database}"
    return target.sqlite.filename_uri
