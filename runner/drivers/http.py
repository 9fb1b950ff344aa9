"""Plain HTTP for health URLs, through one requests session."""

from __future__ import annotations

import requests


class RequestsHttp:
    """The ``Http`` port on requests; its errors are OSErrors, which waits treat as "not yet"."""

    def __init__(self, session: requests.Session | None = None):
        self.session = session or requests.Session()

    def get_status(self, url: str, timeout_s: float) -> int:
        """GET ``url``; the status code, whatever it is."""
        return self.session.get(url, timeout=timeout_s).status_code
