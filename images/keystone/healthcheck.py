"""Container health check: GET /v3 on the address this node binds."""

import os
import sys
import urllib.request

bind = os.environ.get("KEYSTONE_BIND", "127.0.0.1:5000")
try:
    with urllib.request.urlopen(f"http://{bind}/v3", timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError:
    sys.exit(1)
