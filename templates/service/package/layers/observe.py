"""The outermost layer: every request is counted (Prometheus), logged (one JSON line) and, when a
later layer fails, answered in PocketBase's error envelope.

A later layer raises ``ApiError`` for an answer of the gateway's own (a 400, 404, 502...); a
client that leaves mid-body is a 499; anything else is logged and becomes a 500, unless the
response has begun, when all there is to do is cut the connection.
"""

from __future__ import annotations

import time

from .. import logs
from ..asgi import (
    STATE,
    ASGIApp,
    ClientGone,
    Receive,
    RequestState,
    Scope,
    Send,
    send_error,
)
from ..errors import BAD_REQUEST, ApiError
from ..metrics import Metrics


class Observe:
    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: logs.AccessLog | None) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope["client"]
        st = scope[STATE] = RequestState(client[0] if client else "", time.perf_counter())
        try:
            await self.app(scope, receive, send)
        except ApiError as exc:
            if st.responding:
                raise
            await send_error(scope, send, exc)
        except ClientGone:
            st.status = 499
        except Exception:
            if st.responding:
                raise
            logs.log.exception(
                "request failed",
                extra={"fields": {"msg": "request failed", "path": scope["path"]}},
            )
            await send_error(scope, send, ApiError(500, BAD_REQUEST))
        finally:
            method: str = scope["method"]
            route = st.route_name
            self.metrics.observe(route, method, st.status, time.perf_counter() - st.started)
            if self.access_log is not None:
                self.access_log.write(
                    method=method,
                    path=scope["path"],
                    route=route,
                    status=st.status,
                    started=st.started,
                    client=st.client,
                    upstream_ms=st.upstream_ms,
                    size=st.size,
                )
