"""The HTTP edge's routes: health, pdp.v1 as JSON, AuthZEN, forward-auth; one bundle store.

Every route answers JSON; bad input is a 4xx naming the problem (`{"error", "message",
"field"}`), never a 500 and never an allow. The JSON decision routes decide whatever the
caller asks, like pdp.v1 over gRPC: bind them to loopback or a Unix socket, or protect them
with TLS/mTLS (`pdp serve` warns at start on a plaintext non-loopback address).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from pdp.decisionlog import ACCESS_EVALUATION, ACCESS_EVALUATIONS, Recorder
from pdp.errors import BodyError, LimitExceeded, PdpError, RequestError
from pdp.http import authzen, jsonio, v1json
from pdp.http.forward import ForwardAuth
from pdp.http.messages import Request, Response
from pdp.http.proxies import TrustedProxies
from pdp.live.store import BundleStore
from pdp.server.calls import Batch, Calls
from pdp.server.extauthz import ExtAuthzService
from pdp.server.limits import Limits
from pdp.v1 import authorizer_pb2 as pb

Route = Callable[[Request], Awaitable[Response]]
GET = ("GET", "HEAD")
POST = ("POST",)
ANY: tuple[str, ...] = ()
_BATCH_ITEM = re.compile(r"^requests\[(\d+)\]\.?(.*)$")


class HttpEdge:
    """Routes one parsed request to its handler; every handler is total (answers, no raise)."""

    def __init__(
        self,
        store: BundleStore,
        limits: Limits,
        recorder: Recorder,
        gateway: ExtAuthzService,
        proxies: TrustedProxies,
        authzen_base_url: str | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        self.calls = Calls(store, limits, recorder, gateway.cache)  # one cache per server
        self.forward = ForwardAuth(store, gateway, proxies, limits, recorder)
        self.authzen_base_url = authzen_base_url
        self.routes: dict[str, tuple[tuple[str, ...], Route]] = {
            "/healthz": (GET, self.healthz),
            "/readyz": (GET, self.readyz),
            "/v1/is_authorized": (POST, self.is_authorized),
            "/v1/batch_is_authorized": (POST, self.batch_is_authorized),
            "/v1/plan_resources": (POST, self.plan_resources),
            authzen.EVALUATION_PATH: (POST, self.evaluation),
            authzen.EVALUATIONS_PATH: (POST, self.evaluations),
            authzen.METADATA_PATH: (GET, self.metadata),
            "/forward-auth": (ANY, self.forward),
        }

    async def handle(self, request: Request) -> Response:
        found = self.routes.get(request.path)
        if found is None:
            return jsonio.error(404, f"no route {_shown(request.path)}; see docs/calling.md")
        methods, route = found
        if methods and request.method not in methods:
            response = jsonio.error(405, f"{request.path} takes {' or '.join(methods)}")
            response.headers.append(("allow", ", ".join(methods)))
            return response
        response = await route(request)
        if request.method == "HEAD":
            response.body = b""
        return response

    # --- health -----------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return jsonio.ok({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        status = self.store.status
        if status.bundle is not None:
            return jsonio.ok({"status": "ready", "bundle_revision": status.bundle.revision})
        body = {"status": "not_ready", "message": "no valid policy bundle is active"}
        if status.last_error:
            body["last_error"] = status.last_error
        return Response(503, jsonio.dumps(body), list(jsonio.JSON_HEADERS))

    # --- pdp.v1 as JSON ---------------------------------------------------------------------

    async def is_authorized(self, request: Request) -> Response:
        sent = v1json.Sent()
        try:
            message = v1json.authz_message(jsonio.read_object(request), sent)
            decision = self.calls.is_authorized(message)
        except BodyError as exc:
            return jsonio.from_body_error(exc)
        except PdpError as exc:
            return jsonio.from_pdp_error(exc, sent.rename)
        return jsonio.ok(v1json.decision_json(decision))

    async def batch_is_authorized(self, request: Request) -> Response:
        sent = v1json.Sent()
        try:
            message = v1json.batch_message(jsonio.read_object(request), sent)
            decisions = await self.calls.batch_is_authorized_async(message)
        except BodyError as exc:
            return jsonio.from_body_error(exc)
        except PdpError as exc:
            return jsonio.from_pdp_error(exc, sent.rename)
        results = [v1json.decision_json(d, sent.rename) for d in decisions]
        return jsonio.ok({"results": results})

    async def plan_resources(self, request: Request) -> Response:
        sent = v1json.Sent()
        try:
            message = v1json.plan_message(jsonio.read_object(request), sent)
            plan = self.calls.plan_resources(message)
        except BodyError as exc:
            return jsonio.from_body_error(exc)
        except PdpError as exc:
            return jsonio.from_pdp_error(exc, sent.rename)
        return jsonio.ok(plan.to_json())

    # --- AuthZEN ----------------------------------------------------------------------------

    async def evaluation(self, request: Request) -> Response:
        try:
            body = jsonio.read_object(request, media_status=400)
        except BodyError as exc:
            return jsonio.from_body_error(exc)
        return self._evaluate_one(body)

    def _evaluate_one(self, body: dict[str, Any]) -> Response:
        question = None
        try:
            question = authzen.question(body, self.limits)
            decision = self.calls.is_authorized(question.message, api=ACCESS_EVALUATION)
        except PdpError as exc:
            rename = question.rename if question is not None else None
            return jsonio.from_pdp_error(exc, rename)
        return jsonio.ok(authzen.decision_json(decision))

    async def evaluations(self, request: Request) -> Response:
        try:
            body = jsonio.read_object(request, media_status=400)
            stop_on = authzen.semantic(body)
            items = body.get("evaluations")
            if items is not None and not isinstance(items, list):
                raise RequestError("evaluations", "must be a JSON array")
            for key in ("subject", "action", "resource", "context"):
                if body.get(key) is not None and not isinstance(body[key], dict):
                    raise RequestError(key, "must be a JSON object")
            if items and len(items) > self.limits.max_batch_items:
                raise LimitExceeded(
                    "evaluations",
                    f"{len(items)} items is over the batch limit of "
                    f"{self.limits.max_batch_items} (--max-batch)",
                )
        except BodyError as exc:
            return jsonio.from_body_error(exc)
        except PdpError as exc:
            return jsonio.from_pdp_error(exc)
        if not items:  # no evaluations: exactly the single evaluation
            return self._evaluate_one(body)
        message = pb.BatchIsAuthorizedRequest()
        refused: dict[int, RequestError] = {}
        questions: dict[int, authzen.Question] = {}
        for index, item in enumerate(items):
            try:
                resolved = authzen.resolve(item, body, index)
                found = authzen.question(resolved, self.limits, f"evaluations[{index}].")
            except RequestError as exc:
                refused[index] = exc
                message.requests.add()  # a placeholder: the item is answered as malformed
                continue
            questions[index] = found
            message.requests.append(found.message)

        def rename(name: str) -> str:
            match = _BATCH_ITEM.match(name)
            if match is None:
                return "evaluations" if name == "requests" else name
            found = questions.get(int(match.group(1)))
            return found.rename(match.group(2)) if found is not None else name

        try:
            decisions = await self.calls.batch_is_authorized_async(
                message, api=ACCESS_EVALUATIONS, how=Batch(refused, stop_on)
            )
        except PdpError as exc:
            return jsonio.from_pdp_error(exc, rename)
        return jsonio.ok({"evaluations": [authzen.decision_json(d, rename) for d in decisions]})

    async def metadata(self, request: Request) -> Response:
        base = authzen.base_url(self.authzen_base_url, request.header("host"), request.tls)
        if base is None:
            return jsonio.error(
                400, "no usable Host header to name this PDP by; or set --authzen-base-url"
            )
        return jsonio.ok(authzen.metadata(base))


def _shown(path: str) -> str:
    return path if len(path) <= 80 and path.isprintable() else f"{path[:80]!r}..."
