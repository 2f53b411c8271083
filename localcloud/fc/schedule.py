"""Timer trigger schedules: FC's ``cronExpression`` in its two forms.

- ``@every <duration>`` with Go-style units (``30s``, ``5m``, ``1h30m``): fires every interval,
  counted from the time the trigger was deployed (or the local cloud started).
- A six-field cron expression ``second minute hour day-of-month month day-of-week``, optionally
  prefixed ``CRON_TZ=<IANA zone>`` (default UTC, as FC). Fields take ``*``, ``?``, numbers,
  ``a-b`` ranges, ``/step`` and ``,`` lists; months ``JAN``–``DEC`` and days ``SUN``–``SAT``
  (0–6, Sunday 0) by name too. When both day fields are restricted a day matching either one
  fires (classic cron); otherwise both must match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_MONTHS = {
    n: i + 1
    for i, n in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}
_DAYS = {n: i for i, n in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
#: (name, lowest, highest, names) for the six fields.
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)


class ScheduleError(ValueError):
    pass


def _parse_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> tuple[set[int], bool]:
    """The values a field allows, and whether it is unrestricted (``*`` or ``?``)."""
    if text in ("*", "?"):
        return set(range(low, high + 1)), True
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ScheduleError(f"{name} field {text!r}: step {step_text!r} must be a positive number")

        def number(token: str) -> int:
            token = token.upper()
            value = names[token] if token in names else int(token) if token.isdigit() else None
            if value is None or not low <= value <= high:
                raise ScheduleError(f"{name} field {text!r}: {token!r} is not in {low}-{high}")
            return value

        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = number(first), number(last)
        else:
            start = number(base)
            end = high if step else start
        values.update(range(start, end + 1, step or 1))
    return values, False


@dataclass(frozen=True)
class Schedule:
    expression: str
    interval: float = 0.0
    fields: tuple[frozenset[int], ...] = ()
    any_day_of_month: bool = True
    any_day_of_week: bool = True
    zone: str = "UTC"

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        text = expression.strip()
        if text.startswith("@every"):
            spec = text[len("@every") :].strip()
            parts = _DURATION.findall(spec)
            if not spec or "".join(a + u for a, u in parts) != spec:
                raise ScheduleError(f"{expression!r}: use @every with Go durations like 30s, 5m or 1h30m")
            interval = sum(float(amount) * _UNITS[unit] for amount, unit in parts)
            if interval <= 0:
                raise ScheduleError(f"{expression!r}: the interval must be positive")
            return cls(expression, interval=interval)
        zone = "UTC"
        if text.startswith("CRON_TZ="):
            zone, _, text = text[len("CRON_TZ=") :].partition(" ")
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError) as error:
                raise ScheduleError(f"{expression!r}: unknown time zone {zone!r}") from error
        words = text.split()
        if len(words) != 6:
            raise ScheduleError(
                f"{expression!r}: FC cron expressions have six fields (second minute hour day-of-month month "
                "day-of-week), e.g. '0 0/5 * * * *', or use '@every 5m'"
            )
        parsed = [_parse_field(word, *spec) for word, spec in zip(words, _FIELDS, strict=True)]
        return cls(
            expression,
            fields=tuple(frozenset(values) for values, _ in parsed),
            any_day_of_month=parsed[3][1],
            any_day_of_week=parsed[5][1],
            zone=zone,
        )

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.fields[4]:
            return False
        by_month_day = day.day in self.fields[3]
        by_week_day = (day.weekday() + 1) % 7 in self.fields[5]
        if self.any_day_of_month or self.any_day_of_week:
            return by_month_day and by_week_day
        return by_month_day or by_week_day

    def next_after(self, after: float, anchor: float) -> float:
        """The first firing time strictly after ``after`` (epoch seconds); ``anchor`` starts @every."""
        if self.interval:
            periods = int((after - anchor) // self.interval) + 1
            return anchor + max(periods, 1) * self.interval
        zone = ZoneInfo(self.zone)
        start = datetime.fromtimestamp(int(after) + 1, zone)
        day = start.replace(hour=0, minute=0, second=0)
        seconds, minutes, hours = (sorted(f) for f in self.fields[:3])
        for _ in range(366 * 5):
            if self._day_matches(day):
                for hour in hours:
                    for minute in minutes:
                        for second in seconds:
                            candidate = day.replace(hour=hour, minute=minute, second=second)
                            if candidate >= start:
                                return candidate.astimezone(timezone.utc).timestamp()
            day = (day + timedelta(days=1)).replace(hour=0, minute=0, second=0)
        raise ScheduleError(f"{self.expression!r} never fires")
