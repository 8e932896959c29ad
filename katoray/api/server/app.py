"""The FastAPI application: KATO's routes (spec §5) over a ``KatoService``.

Routes parse and serialise only; the work is the service's. Engine calls are plain ``def``
routes, so they run in the server's thread pool and a long prediction never stalls other
connections; the session lock and the knowledge base's readers-writer lock keep them consistent.
OpenAPI documentation is served at ``/docs``.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Body, FastAPI, Query, Request

from katoray.api.server.errors import KatoJSONResponse, install_error_handlers
from katoray.api.server.guard import RequestGuard
from katoray.api.server.metrics import ServerMetrics, health, statistics
from katoray.api.server.models import (ApplyRequest, CreateSessionRequest, ObservationData,
                                       ObservationSequenceRequest, check_node_id, observation_dict)
from katoray.api.server.service import ApiError, KatoService
from katoray.store.base import PatternDelta

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024   # an observe-sequence of ~1M short tokens
DEFAULT_NODE = "default_node"                 # KATO's node when a request names none


def create_app(service: KatoService, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               api_key: str | None = None) -> FastAPI:
    """The ASGI application serving ``service`` (run it with uvicorn, see ``run.serve``)."""
    from katoray import __version__

    app = FastAPI(title="katoray: KATO's HTTP API", version=__version__, default_response_class=KatoJSONResponse,
                  description="KATO's session API (sessions, observe, learn, predictions, patterns) over "
                              "katoray's engine and knowledge bases.")
    metrics = ServerMetrics(disk_path=_disk_path(service.store))
    app.state.service, app.state.metrics = service, metrics
    install_error_handlers(app)
    app.include_router(_session_routes(service))
    app.include_router(_node_routes(service))
    app.include_router(_service_routes(service, metrics, __version__))
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes, api_key=api_key, metrics=metrics)
    return app


def _session_routes(service: KatoService) -> APIRouter:
    router = APIRouter(prefix="/sessions", tags=["sessions"])

    @router.post("")
    def create_session(request: CreateSessionRequest) -> Any:
        return service.create_session(request.node_id, request.config, request.metadata, request.ttl_seconds)

    @router.get("/count")
    def session_count() -> Any:
        return service.session_count()

    @router.get("/{session_id}/exists")
    def session_exists(session_id: str) -> Any:
        return service.session_exists(session_id)

    @router.get("/{session_id}")
    def session_info(session_id: str) -> Any:
        return service.session_info(session_id)

    @router.delete("/{session_id}")
    def delete_session(session_id: str) -> Any:
        return service.delete_session(session_id)

    @router.post("/{session_id}/extend")
    def extend_session(session_id: str, ttl_seconds: int = Query(3600, ge=1)) -> Any:
        return service.extend_session(session_id, ttl_seconds)

    @router.get("/{session_id}/config")
    def get_config(session_id: str) -> Any:
        return service.get_config(session_id)

    @router.post("/{session_id}/config")
    def update_config(session_id: str, body: dict[str, Any] = Body(...)) -> Any:
        return service.update_config(session_id, body)

    @router.post("/{session_id}/observe")
    def observe(session_id: str, data: ObservationData) -> Any:
        return service.observe(session_id, observation_dict(data))

    @router.post("/{session_id}/observe-sequence")
    def observe_sequence(session_id: str, data: ObservationSequenceRequest) -> Any:
        return service.observe_sequence(session_id, [observation_dict(o) for o in data.observations],
                                        data.learn_after_each, data.learn_at_end, data.clear_stm_between)

    for action, method, call in (("stm", "get", service.stm), ("learn", "post", service.learn),
                                 ("clear-stm", "post", service.clear_stm), ("clear-all", "post", service.clear_all),
                                 ("predictions", "get", service.predictions),
                                 ("percept-data", "get", service.percept_data),
                                 ("cognition-data", "get", service.cognition_data),
                                 ("finalize-training", "post", service.finalize_training)):
        _add_session_action(router, action, method, call)
    return router


def _add_session_action(router: APIRouter, action: str, method: str, call) -> None:
    def endpoint(session_id: str) -> Any:
        return call(session_id)

    endpoint.__name__ = action.replace("-", "_")
    getattr(router, method)(f"/{{session_id}}/{action}", summary=call.__doc__ and call.__doc__.split("\n")[0])(endpoint)


def _node_routes(service: KatoService) -> APIRouter:
    router = APIRouter(tags=["knowledge base"])

    @router.get("/pattern/{pattern_id}")
    def get_pattern(pattern_id: str, request: Request, node_id: str | None = None) -> Any:
        return service.pattern(pattern_id, _node_of(request, node_id))

    @router.get("/symbols/stats")
    def symbol_stats(request: Request, node_id: str | None = None) -> Any:
        return service.symbol_stats(_node_of(request, node_id))

    @router.get("/symbols/affinity")
    def symbol_affinities(request: Request, node_id: str | None = None) -> Any:
        return service.symbol_affinities(_node_of(request, node_id))

    @router.get("/symbols/{symbol}/affinity")
    def symbol_affinity(symbol: str, request: Request, node_id: str | None = None) -> Any:
        return service.symbol_affinity(symbol, _node_of(request, node_id))

    @router.post("/nodes/{node_id}/apply", tags=["katoray"])
    def apply(node_id: str, request: ApplyRequest) -> Any:
        """katoray's bulk write: merged learns in one idempotent step (``batch_id``)."""
        deltas = [PatternDelta(p.name, p.events, p.count, p.emotives, p.metadata) for p in request.patterns]
        return service.apply(_checked_node(node_id), deltas, request.batch_id, request.persistence,
                             request.metadata_cap)

    @router.get("/nodes/{node_id}/batches/{batch_id}", tags=["katoray"])
    def is_applied(node_id: str, batch_id: str) -> Any:
        return service.is_applied(_checked_node(node_id), batch_id)

    @router.post("/nodes/{node_id}/owner", tags=["katoray"])
    def claim_owner(node_id: str, owner: str = Body(..., embed=True, min_length=1)) -> Any:
        """Record the run that owns the node's knowledge base if none has (a run never trains into another's)."""
        return service.claim_owner(_checked_node(node_id), owner)

    @router.get("/nodes/{node_id}/totals", tags=["katoray"])
    def totals(node_id: str) -> Any:
        return service.totals(_checked_node(node_id))

    @router.get("/percept-data", deprecated=True)
    def percept_data(request: Request, node_id: str | None = None) -> Any:
        return {"percept_data": {}, "node_id": service.processor_id(_node_of(request, node_id)),
                "warning": "deprecated: use /sessions/{session_id}/percept-data"}

    @router.get("/cognition-data", deprecated=True)
    def cognition_data(request: Request, node_id: str | None = None) -> Any:
        empty = {"predictions": [], "emotives": {}, "symbols": [], "command": "", "metadata": {}, "path": [],
                 "strings": [], "vectors": [], "short_term_memory": []}
        return {"cognition_data": empty, "node_id": service.processor_id(_node_of(request, node_id)),
                "warning": "deprecated: use /sessions/{session_id}/cognition-data"}

    return router


def _node_of(request: Request, node_id: str | None) -> str:
    """KATO's node for a request: ``?node_id=``, else ``x-test-id`` (as ``test_<id>``), else
    ``x-node-id``, else ``default_node``."""
    if node_id is None:
        test_id = request.headers.get("x-test-id")
        if test_id:
            node_id = test_id if test_id.startswith("test_") else f"test_{test_id}"
        else:
            node_id = request.headers.get("x-node-id") or DEFAULT_NODE
    return _checked_node(node_id)


def _checked_node(node_id: str) -> str:
    try:
        return check_node_id(node_id)
    except ValueError as err:
        raise ApiError.detail(422, str(err)) from None


def _service_routes(service: KatoService, metrics: ServerMetrics, version: str) -> APIRouter:
    router = APIRouter(tags=["service"])

    def resources() -> dict[str, float]:
        return metrics.sample(service.sessions.num_created, service.sessions.num_deleted)

    @router.get("/")
    def root() -> Any:
        return {"service": service.service_name, "version": version,
                "description": "KATO's HTTP API over katoray's engine", "docs": "/docs", "health": "/health",
                "status": "running", "uptime_seconds": _uptime(service), "architecture": "katoray",
                "session_support": True}

    @router.get("/health")
    def health_check() -> Any:
        status, issues = health(resources())
        return {"status": status, "processor_status": "healthy", "service_name": service.service_name,
                "uptime_seconds": _uptime(service), "issues": issues, "metrics_collected": metrics.num_requests,
                "last_collection": time.time(), "active_sessions": service.sessions.count(),
                "timestamp": datetime.now(timezone.utc).isoformat(), "store": service.describe_store()}

    @router.get("/status")
    def status() -> Any:
        return {"status": "healthy", "base_processor_id": service.service_name, "uptime_seconds": _uptime(service),
                "sessions": service.session_stats(), "processors": service.node_stats(), "version": version}

    @router.get("/metrics")
    def all_metrics() -> Any:
        return {**_summary(service, metrics, resources()), "rates": metrics.rates(),
                "processor_manager": service.node_stats(), "uptime_seconds": _uptime(service),
                "active_sessions": service.sessions.count()}

    @router.get("/stats")
    def stats(minutes: int = Query(10, ge=1)) -> Any:
        now = resources()
        status, issues = health(now)
        return {"time_range_minutes": minutes, "timestamp": time.time(), "processor_manager": service.node_stats(),
                "current_status": {"status": status, "issues": issues, "metrics": now},
                "time_series": {name: metrics.series(name, minutes * 60) for name in _SERIES},
                "summary": {k: v for k, v in _summary(service, metrics, now).items() if k != "timestamp"}}

    @router.get("/metrics/{metric_name}")
    def metric_history(metric_name: str, minutes: int = Query(10, ge=1)) -> Any:
        resources()
        points = metrics.series(metric_name, minutes * 60)
        if not points:
            raise ApiError.detail(404, f"No data available for metric '{metric_name}' in the last {minutes} minutes")
        return {"metric_name": metric_name, "time_range_minutes": minutes, "timestamp": time.time(),
                "statistics": statistics(points), "data_points": points}

    return router


_SERIES = ("kato_cpu_usage_percent", "kato_memory_usage_percent", "kato_memory_usage_bytes",
           "kato_disk_usage_percent", "load_average_1m", "kato_requests_total", "kato_request_duration_seconds",
           "kato_errors_total", "sessions_created", "sessions_deleted")


def _summary(service: KatoService, metrics: ServerMetrics, now: dict[str, float]) -> dict[str, Any]:
    sessions = service.sessions
    return {"timestamp": time.time(),
            "sessions": {"total_created": sessions.num_created, "total_deleted": sessions.num_deleted,
                         "active": sessions.count(), "operations_total": metrics.num_requests},
            "performance": metrics.performance(),
            "resources": {"cpu_percent": now["kato_cpu_usage_percent"],
                          "memory_percent": now["kato_memory_usage_percent"],
                          "disk_percent": now["kato_disk_usage_percent"]},
            "databases": {"store": {"url": service.describe_store(), "knowledge_bases_open":
                                    service.node_stats()["total_processors"]}}}


def _uptime(service: KatoService) -> float:
    return time.time() - service.started_s


def _disk_path(store: str) -> str:
    """Where the store's files are (for disk use), or the working directory."""
    if store.lower().startswith("sqlite:///"):
        from pathlib import Path

        path = Path(store[len("sqlite:///"):])
        while not path.exists() and path != path.parent:
            path = path.parent
        return str(path)
    return "."
