"""A test function: records what FC handed it, and misbehaves on request.

Every call writes ``$RECORD_DIR/<ns>-<request id>.json`` (retries keep the request id) with the event (as text), the context's
fields and the FC environment, then acts on the event when it is a JSON object:
``{"fail": "msg"}`` raises, ``{"sleep": s}`` sleeps, ``{"exit": n}`` kills the process,
``{"once": "path"}`` blocks for a minute the first time (creating ``path``) and returns at once
after that. It returns the record as JSON. Importing the module writes ``$RECORD_DIR/imported-<pid>``,
the initializer ``$RECORD_DIR/initialized-<pid>``.
"""

import json
import os
import pathlib
import sys
import time
from typing import Any

INITIALIZED = 0
# When this module is imported, by which process: a pre-warmed instance imports it before any request.
if os.environ.get("RECORD_DIR"):
    pathlib.Path(os.environ["RECORD_DIR"]).mkdir(parents=True, exist_ok=True)
    (pathlib.Path(os.environ["RECORD_DIR"]) / f"imported-{os.getpid()}").write_text(str(time.time()))


def initializer(context: Any) -> None:
    global INITIALIZED
    INITIALIZED += 1
    if os.environ.get("RECORD_DIR"):  # when, by which process: a pre-warmed instance runs it at deploy
        (pathlib.Path(os.environ["RECORD_DIR"]) / f"initialized-{os.getpid()}").write_text(str(time.time()))


def handler(event: bytes, context: Any) -> str:
    record = {
        "event": event.decode("utf-8", "replace"),
        "event_type": type(event).__name__,
        "request_id": context.request_id,
        "function": {
            "name": context.function.name,
            "handler": context.function.handler,
            "memory": context.function.memory,
            "timeout": context.function.timeout,
        },
        "region": context.region,
        "account_id": context.account_id,
        "has_credentials": hasattr(context, "credentials"),
        "credentials_key": getattr(getattr(context, "credentials", None), "access_key_id", None),
        "initialized": INITIALIZED,
        "pid": os.getpid(),
        "python": "{}.{}".format(*sys.version_info[:2]),
        "sys_path": sys.path,
        "cwd": os.getcwd(),
        "env": {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("FC_", "ALIBABA_CLOUD_", "PROBE_", "IMMFLOW_"))
        },
    }
    folder = pathlib.Path(os.environ["RECORD_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{time.time_ns()}-{context.request_id}.json").write_text(json.dumps(record))
    try:
        command = json.loads(event)
    except ValueError:
        command = None
    if isinstance(command, dict):
        if "fail" in command:
            raise RuntimeError(command["fail"])
        if "sleep" in command:
            time.sleep(command["sleep"])
        if "exit" in command:
            os._exit(command["exit"])
        if "once" in command:
            marker = pathlib.Path(command["once"])
            if not marker.exists():
                marker.write_text("started")
                time.sleep(60)
    return json.dumps(record)
