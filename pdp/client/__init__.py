"""Call a pdp server from Python: `AuthorizerClient` (sync) and `AsyncAuthorizerClient`.

```python
from pdp.client import AuthorizerClient

with AuthorizerClient("127.0.0.1:9191") as pdp:
    decision = pdp.is_authorized('User::"42"', "readOrder", ("Order", "o-1001"))
    if decision.allowed: ...
```

`pdp.embedded.Authorizer` has the same calls, decided in-process: switching is one line.
"""

from __future__ import annotations

from pdp.client.aio import AsyncAuthorizerClient
from pdp.client.channel import Tls
from pdp.client.errors import (
    BadRequest,
    CallError,
    DeadlineExceeded,
    PdpError,
    ResourceExhausted,
    ServerError,
    Unavailable,
)
from pdp.client.sync import AuthorizerClient
from pdp.client.types import Decision, Request, Status, Uid
from pdp.plantypes import Plan, PlanKind

__all__ = [
    "AsyncAuthorizerClient",
    "AuthorizerClient",
    "BadRequest",
    "CallError",
    "DeadlineExceeded",
    "Decision",
    "PdpError",
    "Plan",
    "PlanKind",
    "Request",
    "ResourceExhausted",
    "ServerError",
    "Status",
    "Tls",
    "Uid",
    "Unavailable",
]
