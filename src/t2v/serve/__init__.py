"""`t2v serve`: a local web page to generate, tune and compare videos (Starlette + uvicorn).

- `create_app(models, results, limits, host) -> Starlette` (app.py): the page and its JSON API
- `describe_model(dir | None, key) -> ServedModel` (work.py): a model folder the page may use
- `ServeLimits` (limits.py): per-request limits; `ResultStore` (storage.py): the results folder
- `JobQueue` (jobs.py): one worker per model, progress and cancel through a U-Net forward hook

The web packages (starlette, uvicorn) are the `serve` extra: `pip install "t2v[serve]"`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from t2v.errors import T2VError
from t2v.serve.limits import ServeLimits

__all__ = ["ServeLimits", "create_app", "describe_model", "run_server"]


def _require_web() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise T2VError(f"t2v serve needs the web packages ({exc.name} is missing); pip install \"t2v[serve]\"") from None


def create_app(*args, **kwargs):
    """See `t2v.serve.app.create_app`."""
    _require_web()
    from t2v.serve.app import create_app as make

    return make(*args, **kwargs)


def describe_model(path: Optional[Path], key: str):
    """See `t2v.serve.work.describe_model`."""
    from t2v.serve.work import describe_model as describe

    return describe(path, key)


def run_server(models: Sequence[Optional[Path]], results: Path, limits: ServeLimits, host: str = "127.0.0.1",
               port: int = 7860) -> None:
    """Serve `models` (None = the embedded default model) until Ctrl-C; results go under `results`."""
    _require_web()
    import uvicorn

    if not 0 < port < 65536:
        raise T2VError(f"--port must be between 1 and 65535, got {port}")
    served = [describe_model(p, f"m{i}") for i, p in enumerate(models or [None])]
    app = create_app(served, results, limits, host=host)
    shown = f"[{host}]" if ":" in host else host
    print(f"t2v serve: http://{shown}:{port}/  (results in {Path(results).resolve()}; Ctrl-C stops)", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host}: anyone who can reach this machine can use the page, read every "
              "result and fill the disk with uploads (there is no login)", flush=True)
    _check_port(host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _check_port(host: str, port: int) -> None:
    """One line instead of uvicorn's log and exit when the address cannot be bound."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise T2VError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port or --host") from None
