"""A client of ``skewless serve``: lookups and pushes over HTTP, one kept-alive connection."""

import http.client
import json
import threading
import urllib.parse
from typing import Any, Iterable, Mapping, Optional, Sequence

from .errors import (
    BadEntityError,
    Error,
    NothingAppliedError,
    PushError,
    StoreUnavailableError,
    UnknownFeatureError,
)
from .online import OnlineResponse

# The server's error codes (docs/server.md) that have a class of their own.
_CLASSES = {
    "BAD_ENTITY": BadEntityError,
    "MISSING_REQUEST_FIELD": BadEntityError,
    "UNKNOWN_FEATURE": UnknownFeatureError,
    "UNKNOWN_SOURCE": UnknownFeatureError,
    "BAD_FEATURE_REFERENCE": UnknownFeatureError,
    "STORE_UNAVAILABLE": StoreUnavailableError,
    "NOTHING_APPLIED": NothingAppliedError,
    "BAD_ROW": PushError,
    "BAD_PUSH_ID": PushError,
    "NOT_A_PUSH_SOURCE": PushError,
    "PUSH_ID_CONFLICT": PushError,
    "OFFLINE_LOG_UNAVAILABLE": PushError,
    "ONLINE_WRITE_FAILED": PushError,
}


class Client:
    """``skewless serve`` at ``url`` (``http://host:6566``). ``api_key`` is sent as
    ``Authorization: Bearer``. One connection is kept and reused (per client; calls are
    serialized by a lock, so a client may be shared between threads)."""

    def __init__(self, url: str = "http://localhost:6566", api_key: Optional[str] = None, timeout: float = 30.0):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https"):
            raise ValueError(f"url: expected http:// or https://, found {url!r}")
        self.url = url.rstrip("/")
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname or "localhost"
        self._port = parsed.port
        self._base = parsed.path.rstrip("/")
        self._timeout = timeout
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._connection: Optional[http.client.HTTPConnection] = None
        self._lock = threading.Lock()

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=self._timeout)

    def _post(self, path: str, body: Any, content_type: str = "application/json") -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = dict(self._headers, **{"Content-Type": content_type})
        with self._lock:
            for attempt in (0, 1):
                if self._connection is None:
                    self._connection = self._connect()
                try:
                    self._connection.request("POST", self._base + path, body=data, headers=headers)
                    response = self._connection.getresponse()
                    payload = response.read()
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    # The server closed an idle kept-alive connection: once more on a new one.
                    self._connection.close()
                    self._connection = None
                    if attempt:
                        raise
                except BaseException:
                    # Whatever else failed (refused, timed out, interrupted), the next call
                    # starts on a new connection.
                    self._connection.close()
                    self._connection = None
                    raise
        try:
            doc = json.loads(payload)
        except ValueError:
            raise Error(f"{self.url}{path}: HTTP {response.status}, not JSON: {payload[:200]!r}") from None
        if response.status != 200:
            problem = doc.get("error", {}) if isinstance(doc, dict) else {}
            code = problem.get("code", "ERROR")
            error = _CLASSES.get(code, Error)(f"{code}: {problem.get('message', payload[:200])}")
            error.code = code
            error.status = response.status
            raise error
        return doc

    def get_online_features(
        self,
        features: Optional[Sequence[str]] = None,
        entity_rows: Iterable[Mapping[str, Any]] = (),
        *,
        service: Optional[str] = None,
        at: Optional[str] = None,
        full_feature_names: bool = False,
    ) -> OnlineResponse:
        """``POST /v1/features``; the same response type as ``FeatureStore.get_online_features``."""
        body: dict = {"entities": [dict(row) for row in entity_rows], "full_names": True}
        if service is not None:
            body["feature_service"] = service
        else:
            body["features"] = [features] if isinstance(features, str) else list(features or [])
        if at is not None:
            body["at"] = at
        return OnlineResponse(self._post("/v1/features", body), full_feature_names)

    def push(self, push_source_name: str, rows: Any, to: str = "online_and_offline") -> dict:
        """``POST /v1/push``; returns the push's report. ``rows`` are dicts (sent as JSON) or a
        DataFrame / Arrow table (sent as an Arrow IPC stream, cast strictly to the source's
        types). ``to`` is ``"online_and_offline"`` (``"online"`` too: always logged) or
        ``"offline"``."""
        to = to if isinstance(to, str) else getattr(to, "name", str(to)).lower()
        to = "online_and_offline" if to == "online" else to
        if isinstance(rows, (list, tuple)):
            return self._post("/v1/push", {"source": push_source_name, "rows": [dict(r) for r in rows], "to": to})
        import pyarrow as pa

        from . import _arrow

        table = pa.table(_arrow(rows, "rows"))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        query = urllib.parse.urlencode({"source": push_source_name, "to": to})
        return self._post(f"/v1/push?{query}", sink.getvalue().to_pybytes(), "application/vnd.apache.arrow.stream")

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
