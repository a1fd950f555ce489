"""The explorer's web app: server-rendered pages and the JSON API behind them (Starlette).

Every page is the rendering of one view's JSON (:mod:`fedledger.explorer.views`), served at
``/api/...`` too. Bad input is a 4xx JSON error (an HTML page for the pages), a chain or a store
that does not answer in time a 503, bytes that do not match their digest a 502, and nothing
else ever shows a trace. Only loopback host names are accepted (no DNS rebinding), and the
pages load nothing that the app does not serve itself.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from faults import FedLedgerError
from fedledger.explorer import charts, views
from fedledger.explorer.details import ChainDetails
from fedledger.explorer.errors import ExplorerError, NotFound
from fedledger.explorer.index import FederationIndex
from fedledger.explorer.views import ViewSettings, plain

HERE = Path(__file__).resolve().parent
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
SECURITY_HEADERS = {
    # Nothing from elsewhere: no CDN, no inline script; the SVG charts are part of the page.
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
log = logging.getLogger(__name__)


def _short(value: object, keep: int = 6) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 2 * keep + 3 else f"{text[:keep]}…{text[-4:]}"


def _when(ts: float | None) -> str:
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters.update(short=_short, when=_when, tojson_pretty=lambda v: json.dumps(plain(v), indent=2, sort_keys=True))
    return env


def create_app(
    index: FederationIndex,
    details: ChainDetails,
    settings: ViewSettings | None = None,
    *,
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS,
) -> Starlette:
    """The app over one federation; ``index`` is refreshed by someone else (the server's poller, or a test)."""
    settings = settings or ViewSettings()
    env = _templates()

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        snap = index.snapshot()
        context.setdefault("fed", views.federation_view(snap, settings))
        return HTMLResponse(env.get_template(name).render(**context), status_code=status, headers=SECURITY_HEADERS)

    def api(data: Any) -> JSONResponse:
        return JSONResponse(plain(data), headers=SECURITY_HEADERS)

    async def call(fn: Callable[..., Any], *args: Any) -> Any:
        return await run_in_threadpool(fn, *args)  # chain and store reads block; the event loop must not

    # -- the JSON API ------------------------------------------------------------------------
    async def api_federation(request: Request) -> Response:
        return api(views.federation_view(index.snapshot(), settings))

    async def api_rounds(request: Request) -> Response:
        return api(views.rounds_view(index.snapshot()))

    async def api_round(request: Request) -> Response:
        rid = views.parse_round_id(request.path_params["round_id"])
        return api(await call(views.round_view, index.snapshot(), rid, details))

    async def api_update(request: Request) -> Response:
        rid = views.parse_round_id(request.path_params["round_id"])
        address = views.parse_address(request.path_params["address"])
        return api(await call(views.update_view, index.snapshot(), rid, address, details))

    async def api_member(request: Request) -> Response:
        address = views.parse_address(request.path_params["address"])
        return api(await call(views.member_view, index.snapshot(), address, details, settings))

    async def api_lineage(request: Request) -> Response:
        return api(views.lineage_view(index.snapshot()))

    async def api_audit(request: Request) -> Response:
        return api(views.audit_report(index.snapshot()))

    # -- pages ---------------------------------------------------------------------------------
    async def overview(request: Request) -> Response:
        snap = index.snapshot()
        return page(
            "overview.html", rounds=views.rounds_view(snap),
            metrics_chart=charts.line_chart(views.metrics_series(snap), title="validation metrics of each round's global model"),
            scores_chart=charts.line_chart(views.score_series(snap), title="contribution scores on chain"),
        )  # fmt: skip

    async def round_page(request: Request) -> Response:
        rid = views.parse_round_id(request.path_params["round_id"])
        return page("round.html", r=await call(views.round_view, index.snapshot(), rid, details))

    async def update_page(request: Request) -> Response:
        rid = views.parse_round_id(request.path_params["round_id"])
        address = views.parse_address(request.path_params["address"])
        return page("update.html", u=await call(views.update_view, index.snapshot(), rid, address, details))

    async def member_page(request: Request) -> Response:
        address = views.parse_address(request.path_params["address"])
        snap = index.snapshot()
        m = await call(views.member_view, snap, address, details, settings)
        chart = charts.line_chart(views.score_series(snap, only=m["address"]), title="score on chain per round")
        return page("member.html", m=m, chart=chart)

    async def lineage_page(request: Request) -> Response:
        lin = views.lineage_view(index.snapshot())
        return page("lineage.html", lin=lin, graph=charts.lineage_graph(lin["models"], lin["other_rounds"]))

    # -- downloads: the bytes behind an on-chain digest, re-hashed before they are served -----
    async def download_genesis(request: Request) -> Response:
        return await verified(index.snapshot().genesis_model, "genesis-model.safetensors")

    async def download_round(request: Request) -> Response:
        rid = views.parse_round_id(request.path_params["round_id"])
        what = request.path_params["what"]
        if what not in ("model", "manifest"):
            raise NotFound(f"a round has a model and a manifest to download, not {what[:40]!r}")
        info = views.entry_of(index.snapshot(), rid).info
        digest = info.global_model if what == "model" else info.manifest
        if digest is None:
            raise NotFound(f"round {rid} has no {what}", hint="only finalised rounds have a global model and a manifest")
        return await verified(digest, f"round-{rid}-{'model.safetensors' if what == 'model' else 'manifest.json'}")

    async def verified(digest: bytes, name: str) -> Response:
        if not digest:
            raise NotFound(f"{name} is not known yet")
        data = await call(details.content, digest, name)
        media = "application/json" if name.endswith(".json") else "application/octet-stream"
        headers = {**SECURITY_HEADERS, "content-disposition": f'attachment; filename="{name}"',
                   "x-content-cid": views.cid(digest) or ""}  # fmt: skip
        return Response(data, media_type=media, headers=headers)

    # -- errors --------------------------------------------------------------------------------
    def failure(request: Request, status: int, message: str, hint: str | None) -> Response:
        if request.url.path.startswith(("/api/", "/download/")):
            return JSONResponse({"error": message, "hint": hint, "status": status}, status_code=status, headers=SECURITY_HEADERS)
        try:
            return page("error.html", status=status, status_code=status, message=message, hint=hint)
        except Exception:  # an error page that cannot render still answers
            return HTMLResponse(f"<h1>{status}</h1>", status_code=status)

    async def on_explorer_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ExplorerError)
        return failure(request, exc.status, str(exc), exc.hint)

    async def on_fedledger_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FedLedgerError)
        return failure(request, 503 if type(exc).transient else 502, str(exc), exc.hint)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return failure(request, exc.status_code, str(exc.detail), None)

    async def on_anything(request: Request, exc: Exception) -> Response:
        log.error("explorer: %s on %s: %s", type(exc).__name__, request.url.path, exc)
        return failure(request, 500, f"internal error ({type(exc).__name__})", "see the explorer's log")

    routes = [
        Route("/", overview),
        Route("/rounds/{round_id}", round_page),
        Route("/rounds/{round_id}/updates/{address}", update_page),
        Route("/members/{address}", member_page),
        Route("/lineage", lineage_page),
        Route("/api/federation", api_federation),
        Route("/api/rounds", api_rounds),
        Route("/api/rounds/{round_id}", api_round),
        Route("/api/rounds/{round_id}/updates/{address}", api_update),
        Route("/api/members/{address}", api_member),
        Route("/api/lineage", api_lineage),
        Route("/api/audit", api_audit),
        Route("/download/genesis", download_genesis),
        Route("/download/rounds/{round_id}/{what}", download_round),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))],
        exception_handlers={ExplorerError: on_explorer_error, FedLedgerError: on_fedledger_error,
                            HTTPException: on_http, Exception: on_anything},  # fmt: skip
    )
