"""c2c_testing: real servers for the tests of the c2c workspace (unpublished pytest plugin).

The fixtures live in `c2c_testing.plugin` (loaded automatically through the `pytest11` entry
point); this module exports the classes and helpers for type hints and direct use.
"""

from importlib.metadata import version as _version

from c2c_testing._asgi import serve_asgi
from c2c_testing._binaries import INSTALL_COMMAND, MissingBinaryError
from c2c_testing._cluster import ClusterNode, RedisCluster, key_slot, parse_cluster_nodes
from c2c_testing._net import free_port, wait_for_port
from c2c_testing._nginx import Nginx, nginx_binary
from c2c_testing._postgresql import PostgreSQLServer
from c2c_testing._process import ServerError, stop_process
from c2c_testing._redis import RedisSentinel, RedisServer, SentinelProcess
from c2c_testing._reference import (
    C2CASGIUTILS_014_REQUIREMENTS,
    ReferenceEnvironmentError,
    ensure_c2casgiutils_014,
    reference_venv_location,
)
from c2c_testing._resp import RespError, RespValue
from c2c_testing.plugin import RedisClusterFactory, RedisSentinelFactory, RedisServerFactory

__version__ = _version("c2c-testing")

__all__ = [
    "C2CASGIUTILS_014_REQUIREMENTS",
    "INSTALL_COMMAND",
    "ClusterNode",
    "MissingBinaryError",
    "Nginx",
    "PostgreSQLServer",
    "RedisCluster",
    "RedisClusterFactory",
    "RedisSentinel",
    "RedisSentinelFactory",
    "RedisServer",
    "RedisServerFactory",
    "ReferenceEnvironmentError",
    "RespError",
    "RespValue",
    "SentinelProcess",
    "ServerError",
    "__version__",
    "ensure_c2casgiutils_014",
    "free_port",
    "key_slot",
    "nginx_binary",
    "parse_cluster_nodes",
    "reference_venv_location",
    "serve_asgi",
    "stop_process",
    "wait_for_port",
]
