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
would hit, never of a shared random stream, and an item is made of what the same uploads give again
in another run: an event's bucket/key/ETag; a task's project, type and request; a call's action
and parameters (a TaskId replaced by its task's item); a pushed body or an invocation's payload
without the ids and times the services make up (`stable_digest`); plus the attempt, and which
repeat of the same work it is (`FaultPlan.occurrence`). So one seed and the same uploads meet the
same faults at the same places whatever order the services' threads run in (docs/faults.md says
what can still differ).

**Logged.** Every fault that fires is one JSON line in ``DIR/faults.log``
(``{"time", "kind", "item", "detail"}``), so a test or the soak can say what was injected where,
and `FaultPlan.counts` reads them back.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
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

#: Fields whose values differ from one run to the next for the same work: ids the services make up
#: (TaskId, RequestId, MessageId, a CloudEvent's id, OSS's request id, and the local account's id,
#: new in every state folder, in an MNS notification's owner and subscriber, an IMM event's subject
#: and an OSS event's identities and bucket ARN), times, and the MD5 of a message that holds them.
#: A fault item leaves them out (`stable_digest`).
VOLATILE_FIELDS = frozenset(
    {
        "id", "time", "subject", "TaskId", "RequestId", "MessageId", "MessageMD5", "PublishTime",
        "StartTime", "EndTime", "TopicOwner", "Subscriber", "requestId", "eventTime",
        "x-oss-request-id", "triggerTime", "sequencer", "arn", "ownerIdentity", "principalId",
    }
)  # fmt: skip
#: A made-up id inside a longer text (an error message naming a task).
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: The elements of a flat XML document (an MNS notification in the XML format).
_XML_ELEMENT = re.compile(r"<(\w+)>(.*?)</\1>", re.DOTALL)
#: How many items `FaultPlan.occurrence` remembers (the oldest are long finished).
MAX_OCCURRENCES_REMEMBERED = 10_000
_MAX_DEPTH = 32


class FaultSpecError(ValueError):
    """The fault SPEC cannot be read; the message says which part and what is accepted."""


@dataclass
class FaultPlan:
    seed: int = 0
    rates: dict[str, float] = field(default_factory=dict)
    log_path: Path | None = None
    settings: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _seen: dict[str, int] = field(default_factory=dict, repr=False)
    _numbered: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

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

    def occurrence(self, item: str, token: str | None = None) -> int:
        """How many times `item` has come up in this process, this time included (1, 2, ...), so that
        repeats of the same work (a client's retry of a call, a timer's next firing) are told apart
        by something that does not change from one run to the next. With `token` (an invocation's
        request id) the same token gets the same number again. Remembers the last
        `MAX_OCCURRENCES_REMEMBERED` items: the oldest ones' repeats are long over."""
        with self._lock:
            if token is not None and (item, token) in self._numbered:
                return self._numbered[(item, token)]
            number = self._seen.pop(item, 0) + 1
            self._seen[item] = number  # re-inserted: the dict's order is the order of last use
            if len(self._seen) > MAX_OCCURRENCES_REMEMBERED:
                del self._seen[next(iter(self._seen))]
            if token is not None:
                self._numbered[(item, token)] = number
                if len(self._numbered) > MAX_OCCURRENCES_REMEMBERED:
                    del self._numbered[next(iter(self._numbered))]
            return number

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


def stable_digest(value: object) -> str:
    """A short digest of `value` that is the same in another run doing the same work: JSON (also
    JSON inside a string field, as an MNS message holding an IMM notification) and flat XML are
    read, and `VOLATILE_FIELDS` and UUIDs left out. Bytes and text that are neither are taken whole."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = json.dumps(_stable(value, 0), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stable(value: object, depth: int) -> object:
    if depth > _MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {str(k): _stable(v, depth + 1) for k, v in value.items() if k not in VOLATILE_FIELDS}
    if isinstance(value, list | tuple):
        return [_stable(v, depth + 1) for v in value]
    if isinstance(value, str):
        parsed = _parse(value)
        return _UUID.sub("<id>", value) if parsed is None else _stable(parsed, depth + 1)
    return value


def _parse(text: str) -> object | None:
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            parsed: object = json.loads(stripped)
        except (ValueError, RecursionError):
            return None
        return parsed
    if stripped.startswith("<"):
        elements = _XML_ELEMENT.findall(stripped.split("?>", 1)[-1])
        if elements:
            return {name: html.unescape(inner) for name, inner in elements}
    return None
