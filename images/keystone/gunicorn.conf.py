"""gunicorn settings for Keystone, read from the working directory.

Keystone parses sys.argv when its WSGI application is created, so gunicorn
must start with no command-line arguments; everything it needs is here, and
what differs per node comes from the environment.
"""

import importlib.util
import os


def _has_module(name: str) -> bool:
    # find_spec imports the parent packages; a missing parent raises.
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


# 28.x and later ship keystone.wsgi.api; older releases expose a factory.
if _has_module("keystone.wsgi.api"):
    wsgi_app = "keystone.wsgi.api:application"
else:
    wsgi_app = "keystone.server.wsgi:initialize_public_application()"

bind = os.environ.get("KEYSTONE_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("KEYSTONE_WORKERS", "2"))
timeout = int(os.environ.get("KEYSTONE_TIMEOUT", "60"))
# On SIGTERM, workers finish the requests they hold for up to this long.
graceful_timeout = int(os.environ.get("KEYSTONE_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
accesslog = "-"
errorlog = "-"
# No preload_app: each worker must open its own database and memcached
# connections; sockets made before the fork would be shared between workers.
# A worker that cannot load the application still stops gunicorn at start.
#
# But Keystone's modules are imported here, once, in the master: the workers
# fork with them loaded and only create the application. Importing opens no
# socket (the application, made in each worker, does), and a node then boots
# on about half the CPU, which on a busy host is CPU its serving peers keep.
import keystone.api  # noqa: E402,F401
import keystone.server.flask.application  # noqa: E402,F401
