"""Seeded fault injection for the local cloud: ``immflow local up --faults SPEC``.

SPEC is a comma-separated list of ``kind=probability`` (0 to 1) and ``seed=N``, for example
``seed=7,oss.event.duplicate=0.1,mns.push.fail=0.05,imm.throttle=0.05``; the same text can be put in
``DIR/faults.json`` as ``{"seed": 7, "rates": {"oss.event.duplicate": 0.1}}``, which a restarted
local cloud reads again. Unknown kinds are refused with the list of known ones. ``delay_seconds=N``
and ``hang_seconds=N`` (`FAULT_SETTINGS`) set how long delays and hanging tasks last.

Where each kind is injected (each at the place the real fault would happen):
``localcloud.oss.events.Deliverer`` (oss.event.*), ``localcloud.mns.push.Pusher`` (mns.push.*),
``localcloud.imm.service.ImmService.handle`` (imm.throttle, imm.error, imm.response.lost),
``localcloud.imm.engine.Engine`` (imm.hang, imm.notification.lost), ``localcloud.fc.service``
(fc.crash); ``localcloud.kill`` is done and recorded by ``bench/soak.py``.

**Reproducible.** Whether a fault fires is a function of the seed, the kind and the *item* it
would hit (an event's bucket/key/ETag, a message id, a task id and attempt), never of a shared
random stream: the same uploads with the same seed meet the same faults whatever order the
services' threads run in.

**Logged.** Every fault that fires is one JSON line in ``DIR/faults.log``
(``{"time", "kind", "item", "detail"}``), so a test or the soak can say what was injected where,
and `FaultPlan.counts` reads them back.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

#: Every fault the local services can inject, and what it does.
FAULT_KINDS: dict[str, str] = {
    "oss.event.drop": "an OSS trigger event is never delivered",
    "oss.event.duplicate": "an OSS trigger event is delivered twice",
    "oss.event.delay": "an OSS trigger event is delivered a few seconds late",
    "mns.push.duplicate": "a topic push is delivered twice",
    "mns.push.delay": "a topic push is delivered a few seconds late (later pushes overtake it)",
    "mns.push.fail": "one attempt of a topic push fails as a 5xx answer would; the strategy retries it",
    "imm.throttle": "an IMM API call answers Throttling.User",
    "imm.error": "an IMM API call answers HTTP 500 InternalError",
    "imm.response.lost": "an IMM API call is carried out, but its answer is lost: HTTP 500 InternalError",
    "imm.hang": "an IMM task waits a long time before it starts",
    "imm.notification.lost": "an IMM task's notification is never published",
    "fc.crash": "a function's worker process is killed in the middle of an invocation",
    "localcloud.kill": "the whole local cloud is killed (SIGKILL) and restarted (done by the soak, bench/soak.py)",
}
#: Numbers a SPEC may set besides the rates, with their defaults: how long a delayed event or push
#: waits at most (each one waits a seeded share of it) and how long a hanging IMM task waits.
FAULT_SETTINGS: dict[str, float] = {"delay_seconds": 5.0, "hang_seconds": 60.0}
FAULTS_FILE = "faults.json"
FAULT_LOG = "faults.log"


class FaultSpecError(ValueError):
    """The fault SPEC cannot be read; the message says which part and what is accepted."""


@dataclass
class FaultPlan:
    seed: int = 0
    rates: dict[str, float] = field(default_factory=dict)
    log_path: Path | None = None
    settings: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def parse(cls, spec: str, log_path: Path | None = None) -> FaultPlan:
        seed = 0
        rates: dict[str, float] = {}
        settings: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep:
                raise FaultSpecError(f"{part!r}: write kind=probability or seed=N")
            if name == "seed":
                try:
                    seed = int(value)
                except ValueError:
                    raise FaultSpecError(f"seed={value!r} is not an integer") from None
                continue
            if name in FAULT_SETTINGS:
                settings[name] = _setting(name, value)
                continue
            rates[name] = _rate(name, value)
        return cls(seed, rates, log_path, settings)

    @classmethod
    def from_json(cls, data: object, log_path: Path | None = None) -> FaultPlan:
        if not isinstance(data, dict):
            raise FaultSpecError(f"{FAULTS_FILE} must hold an object with seed and rates")
        raw_rates = data.get("rates") or {}
        if not isinstance(raw_rates, dict):
            raise FaultSpecError(f"{FAULTS_FILE}: rates must be an object of kind: probability")
        rates = {str(name): _rate(str(name), value) for name, value in raw_rates.items()}
        raw_settings = data.get("settings") or {}
        if not isinstance(raw_settings, dict):
            raise FaultSpecError(f"{FAULTS_FILE}: settings must be an object of name: number")
        settings = {str(name): _setting(str(name), value) for name, value in raw_settings.items()}
        return cls(int(data.get("seed") or 0), rates, log_path, settings)

    @classmethod
    def for_state_dir(cls, state_dir: Path, spec: str | None = None) -> FaultPlan:
        """The plan of a state folder: `spec` when given (and saved), else ``DIR/faults.json``, else none."""
        path = state_dir / FAULTS_FILE
        log = state_dir / FAULT_LOG
        if spec is not None:
            plan = cls.parse(spec, log)
            path.write_text(json.dumps(plan.to_json(), indent=2) + "\n")
            return plan
        if path.exists():
            return cls.from_json(json.loads(path.read_text()), log)
        return cls(log_path=log)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"seed": self.seed, "rates": dict(sorted(self.rates.items()))}
        if self.settings:
            data["settings"] = dict(sorted(self.settings.items()))
        return data

    def setting(self, name: str) -> float:
        return self.settings.get(name, FAULT_SETTINGS[name])

    def share(self, kind: str, item: str) -> float:
        """A reproducible number in [0, 1) for `item` (how far into its delay a fault strikes),
        independent of whether the fault fires."""
        return _uniform(self.seed, kind + "#share", item)

    def record(self, kind: str, item: str, detail: str = "") -> None:
        """Log a fault that was done outside the services (the soak's kill of the whole cloud)."""
        if kind not in FAULT_KINDS:
            raise KeyError(f"unknown fault kind {kind!r}")
        self._log(kind, item, detail)

    @property
    def active(self) -> bool:
        return any(rate > 0 for rate in self.rates.values())

    def fires(self, kind: str, item: str, detail: str = "") -> bool:
        """True when fault `kind` hits `item`; logged when it does."""
        if kind not in FAULT_KINDS:
            raise KeyError(f"unknown fault kind {kind!r}")
        rate = self.rates.get(kind, 0.0)
        if rate <= 0 or _uniform(self.seed, kind, item) >= rate:
            return False
        self._log(kind, item, detail)
        return True

    def counts(self) -> Counter[str]:
        """How many faults of each kind the log holds (across restarts of the local cloud)."""
        counted: Counter[str] = Counter()
        if self.log_path is None or not self.log_path.exists():
            return counted
        for line in self.log_path.read_text().splitlines():
            try:
                counted[json.loads(line)["kind"]] += 1
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a kill -9
        return counted

    def _log(self, kind: str, item: str, detail: str) -> None:
        if self.log_path is None:
            return
        line = json.dumps({"time": round(time.time(), 3), "kind": kind, "item": item, "detail": detail})
        with self._lock, open(self.log_path, "a") as log:
            log.write(line + "\n")


def _rate(name: str, value: object) -> float:
    if name not in FAULT_KINDS:
        known = ", ".join(sorted(FAULT_KINDS))
        raise FaultSpecError(f"unknown fault {name!r}; the local cloud can inject: {known}")
    try:
        rate = float(str(value))
    except ValueError:
        raise FaultSpecError(f"{name}={value!r}: a probability is a number from 0 to 1") from None
    if not 0 <= rate <= 1:
        raise FaultSpecError(f"{name}={rate}: a probability is a number from 0 to 1")
    return rate


def _setting(name: str, value: object) -> float:
    if name not in FAULT_SETTINGS:
        known = ", ".join(sorted(FAULT_SETTINGS))
        raise FaultSpecError(f"unknown fault setting {name!r}; known settings: {known}")
    try:
        number = float(str(value))
    except ValueError:
        raise FaultSpecError(f"{name}={value!r}: a number of seconds") from None
    if number < 0:
        raise FaultSpecError(f"{name}={number}: a number of seconds, 0 or more")
    return number


def _uniform(seed: int, kind: str, item: str) -> float:
    digest = hashlib.sha256(f"{seed}\x1f{kind}\x1f{item}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
