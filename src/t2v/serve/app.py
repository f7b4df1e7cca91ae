"""The web app of `t2v serve` on Starlette: one static page and a small JSON API.

```
GET  /                      the page (page.html, page.js, page.css: no CDN, works offline)
GET  /api/config            models (key, label, defaults), limits, schedulers
POST /api/generate          {model, prompt, num_frames, height, width, steps, ...}   -> 202 job
POST /api/upload?name=N     raw bytes of a clip (streamed, size-limited, decoded)    -> 201 upload facts
POST /api/tune              {model, upload, prompt, edit_prompts, tune_steps, ...}   -> 202 job
GET  /api/jobs[/ID]         job state, stage, step / total, error, result
POST /api/jobs/ID/cancel    drop a waiting job, or stop a running one at its next step
GET  /api/results           earlier results with their settings, newest first
GET  /files/ID/NAME         a result's video or JSON (?download=1: as an attachment)
```
Bad input answers 400 (413 / 415 / 429 for limits, uploads, a full queue) with {"error": one line}.
POSTs must carry the header `X-Requested-With: t2v`, which a page of another site cannot send
without a CORS preflight this server never grants (no cross-site requests against localhost).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Sequence

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from t2v.errors import T2VError
from t2v.serve.jobs import Job, JobQueue
from t2v.serve.limits import ServeLimits, check_generate, check_tune, clamp_defaults
from t2v.serve.storage import ResultStore, UploadRefused, new_id, upload_too_large
from t2v.serve.work import ServedModel, run_generate, run_tune_edit

MAX_JSON_BYTES = 64_000
CSRF_HEADER = "x-requested-with"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_STATIC = {"page.js": "text/javascript", "page.css": "text/css"}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class SecurityHeaders:
    """ASGI middleware: the headers of `_SECURITY_HEADERS` on every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in _SECURITY_HEADERS.items() if k.lower().encode() not in names]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _static(name: str) -> bytes:
    return resources.files("t2v.serve").joinpath(name).read_bytes()


def create_app(models: Sequence[ServedModel], results: Path, limits: Optional[ServeLimits] = None,
               host: str = "127.0.0.1") -> Starlette:
    """The app serving `models` (the first is preselected), keeping results under `results`.

    `host` is the address the server binds: on a loopback address only requests whose Host header is
    a loopback name are answered (a DNS-rebinding page cannot reach the API).
    """
    if not models:
        raise T2VError("no model to serve")
    limits = limits or ServeLimits()
    store = ResultStore(results)
    jobs = JobQueue(limits.max_queue)
    by_key = {m.key: m for m in models}

    def model_of(data: dict[str, Any]) -> ServedModel:
        key = data.get("model") or models[0].key
        if key not in by_key:
            raise T2VError(f"unknown model {key!r}; this server has {', '.join(by_key)}")
        return by_key[key]

    async def read_json(request: Request) -> dict[str, Any]:
        if request.headers.get(CSRF_HEADER) != "t2v":
            raise PermissionError
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_JSON_BYTES:
                raise T2VError(f"the request is over {MAX_JSON_BYTES // 1000} kB; shorten the prompts")
        try:
            data = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise T2VError("the request is not JSON") from None
        if not isinstance(data, dict):
            raise T2VError("the request must be a JSON object")
        return data

    def submit(job: Job) -> JSONResponse:
        try:
            jobs.submit(job)
        except T2VError as exc:
            return _error(str(exc), 429)
        return JSONResponse(jobs.public(job), status_code=202)

    # ------------------------------------------------------------------------------------------
    async def page(request: Request) -> Response:
        return Response(_static("page.html"), media_type="text/html; charset=utf-8")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return _error("not found", 404)
        return Response(_static(name), media_type=_STATIC[name])

    async def config(request: Request) -> Response:
        from t2v.diffusion.schedulers import SCHEDULERS

        shown = [{**m.public(), "defaults": clamp_defaults(m.defaults, limits)} for m in models]
        return JSONResponse({"models": shown, "limits": limits.as_dict(),
                             "schedulers": list(SCHEDULERS)})

    async def generate(request: Request) -> Response:
        try:
            data = await read_json(request)
            model = model_of(data)
            settings = check_generate(data, model.defaults, model.vae_factor, limits)
        except PermissionError:
            return _error(f"missing header {CSRF_HEADER}: t2v", 403)
        except T2VError as exc:
            return _error(str(exc))
        return submit(Job(new_id(), "generate", model.key, settings, lambda job: run_generate(job, model, store)))

    async def upload(request: Request) -> Response:
        if request.headers.get(CSRF_HEADER) != "t2v":
            return _error(f"missing header {CSRF_HEADER}: t2v", 403)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_upload_bytes:
            return _error(upload_too_large(int(length), limits), 413)
        # Streamed to a hidden file under a name made here; the size is counted as the bytes come
        # (a client may send no or a false Content-Length), then PyAV decodes it in a thread.
        uid, part = store.incoming()
        size = 0
        try:
            with open(part, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limits.max_upload_bytes:
                        return _error(upload_too_large(size, limits), 413)
                    f.write(chunk)
            meta = await run_in_threadpool(store.accept_upload, uid, part, request.query_params.get("name", ""), limits)
        except UploadRefused as exc:
            return _error(str(exc), exc.status)
        finally:
            part.unlink(missing_ok=True)
        return JSONResponse(meta, status_code=201)

    async def tune(request: Request) -> Response:
        try:
            data = await read_json(request)
            model = model_of(data)
            clip, facts = store.upload(data.get("upload"))
            settings = check_tune(data, facts["frames"], limits)
        except PermissionError:
            return _error(f"missing header {CSRF_HEADER}: t2v", 403)
        except T2VError as exc:
            return _error(str(exc))
        settings["upload"] = facts["id"]
        return submit(Job(new_id(), "edit", model.key, settings, lambda job: run_tune_edit(job, model, store, clip, facts)))

    async def job_list(request: Request) -> Response:
        return JSONResponse([jobs.public(j) for j in jobs.recent()])

    async def job_get(request: Request) -> Response:
        job = jobs.get(request.path_params["job_id"])
        return JSONResponse(jobs.public(job)) if job is not None else _error("no such job", 404)

    async def job_cancel(request: Request) -> Response:
        if request.headers.get(CSRF_HEADER) != "t2v":
            return _error(f"missing header {CSRF_HEADER}: t2v", 403)
        job = jobs.get(request.path_params["job_id"])
        if job is None:
            return _error("no such job", 404)
        jobs.cancel(job)
        return JSONResponse(jobs.public(job))

    async def result_list(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(store.results))

    async def result_file(request: Request) -> Response:
        rid, name = request.path_params["rid"], request.path_params["name"]
        path = store.file(rid, name)
        if path is None:
            return _error("no such file", 404)
        media = "video/mp4" if name.endswith(".mp4") else "application/json"
        if request.query_params.get("download"):
            return FileResponse(path, media_type=media, filename=f"t2v-{rid}-{name}")
        return FileResponse(path, media_type=media, content_disposition_type="inline")

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [
        Route("/", page),
        Route("/static/{name}", static),
        Route("/api/health", health),
        Route("/api/config", config),
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/tune", tune, methods=["POST"]),
        Route("/api/jobs", job_list),
        Route("/api/jobs/{job_id}", job_get),
        Route("/api/jobs/{job_id}/cancel", job_cancel, methods=["POST"]),
        Route("/api/results", result_list),
        Route("/files/{rid}/{name}", result_file),
    ]
    middleware = []
    if host in LOOPBACK:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]"]))
    middleware.append(Middleware(SecurityHeaders))
    app = Starlette(routes=routes, middleware=middleware)

    app.state.jobs, app.state.store, app.state.limits = jobs, store, limits
    return app
