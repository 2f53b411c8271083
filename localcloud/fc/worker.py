"""One FC function instance: ``python -m localcloud.fc.worker <request fd> <reply fd> <code folder>``.

The local FC starts one such process per instance with FC's environment already set (``FC_*``,
``ALIBABA_CLOUD_*`` and the function's variables), from the folder that holds ``localcloud``;
the worker then makes the code folder its working directory and puts it first on ``sys.path``
in place of that folder. The process imports only the standard library and this package's frame
codec before it loads the handler, so the function sees a clean interpreter, as on FC.

It runs on the Python of the function's runtime (3.9, 3.10 or 3.12), not the local cloud's, so
this module and :mod:`localcloud.fc.protocol` keep to syntax and library calls 3.9 has.

Requests: ``{"op": "init", ...}`` runs the initializer once; ``{"op": "load", ...}`` imports the
handler's module ahead of the first request (a pre-warmed instance); ``{"op": "invoke", ...}`` calls
``handler(event: bytes, context)``. Replies: ``{"ok": true}`` with the return value as payload
(``str`` UTF-8 encoded, ``bytes`` as is, ``None`` empty, dict/list JSON-encoded: FC's behaviour
for other types is UNCONFIRMED, so we encode them the way a user would expect), or
``{"ok": false, "error": {"errorMessage", "errorType", "stackTrace"}}`` as FC reports an
unhandled exception (docs/fc.md#the-python-runtime).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from localcloud.fc.protocol import read_frame, write_frame

_request_id = ""


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.fc_request_id = _request_id
        return True


def _configure_logging() -> None:
    """FC's preconfigured root logger: ``<time> <request id> [LEVEL] message`` on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(fc_request_id)s [%(levelname)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _load(handler: str) -> Callable[..., Any]:
    module_name, _, function_name = handler.rpartition(".")
    if not module_name:
        raise ValueError(f"handler {handler!r} must be <module>.<function>, e.g. index.handler")
    return getattr(importlib.import_module(module_name), function_name)  # type: ignore[no-any-return]


def _context(meta: dict[str, Any], request_id: str) -> SimpleNamespace:
    """The context FC passes: python3.12 has no ``credentials`` and uses ``logger`` (§3.2)."""
    logger = logging.getLogger()
    function = SimpleNamespace(
        name=meta["function"], handler=meta["handler"], memory=meta["memory"], timeout=meta["timeout"]
    )
    context = SimpleNamespace(
        request_id=request_id, function=function, region=meta["region"], account_id=meta["account_id"]
    )
    if meta["runtime"] == "python3.12":
        function.version_id = ""
        function.qualifier = "LATEST"
        context.logger = logger
    else:
        context.credentials = SimpleNamespace(
            access_key_id=os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID", ""),
            access_key_secret=os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ""),
            security_token=os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN", ""),
        )
        context.getLogger = lambda: logger
    return context


def _error(exc: BaseException) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)[1:]  # drop this module's own call frame
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": [
            [f'File "{f.filename}"', f"line {f.lineno}", f"in {f.name}", f.line or ""] for f in frames
        ],
    }


def _encode(result: Any) -> bytes:
    import json

    if result is None:
        return b""
    if isinstance(result, bytes):
        return result
    if isinstance(result, str):
        return result.encode()
    if isinstance(result, (dict, list)):
        return json.dumps(result).encode()
    return str(result).encode()


def _initialize(initializer: str, context: SimpleNamespace) -> None:
    _load(initializer)(context)


def _call(target: Callable[..., Any], *args: Any) -> tuple[dict[str, Any], bytes]:
    try:
        return {"ok": True}, _encode(target(*args))
    except BaseException as exc:  # the function's failure is reported, never fatal to the worker
        return {"ok": False, "error": _error(exc)}, b""


def main(argv: list[str]) -> int:
    global _request_id
    requests_fd, replies_fd, code_dir = int(argv[0]), int(argv[1]), argv[2]
    os.chdir(code_dir)
    sys.path[0] = code_dir  # ``-m`` put the folder holding localcloud there
    _configure_logging()
    handler: Callable[..., Any] | None = None
    while True:
        try:
            header, payload = read_frame(requests_fd)
        except EOFError:
            return 0
        meta = header["meta"]
        _request_id = header["request_id"]
        sys.path[1:1] = [p for p in meta.get("extra_paths", []) if p not in sys.path]
        context = _context(meta, _request_id)
        if header["op"] == "init":
            reply = _call(_initialize, meta["initializer"], context)
        elif header["op"] == "load":
            try:
                handler = _load(meta["handler"])
                reply = ({"ok": True}, b"")
            except BaseException as exc:
                reply = ({"ok": False, "error": _error(exc)}, b"")
        else:
            if handler is None:
                try:
                    handler = _load(meta["handler"])
                except BaseException as exc:
                    write_frame(replies_fd, {"ok": False, "error": _error(exc)})
                    continue
            reply = _call(handler, payload, context)
        sys.stdout.flush()
        sys.stderr.flush()
        write_frame(replies_fd, *reply)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
