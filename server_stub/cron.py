"""Cron rules and one-time moments, read and turned into instants in the server's time zone (pure: no clock).

A rule has cron's five fields, ``minute hour day-of-month month day-of-week``, each ``*``, a number, a name
(``jan``…``dec``, ``sun``…``sat``; day-of-week 0 and 7 are Sunday), a range ``a-b``, a step ``*/n``, ``a-b/n``
or ``a/n`` (from a to the field's end), or a comma list of these; or one of ``@hourly @daily @midnight @weekly
@monthly @yearly @annually``. As in Vixie cron, when both day fields are restricted a day matching either runs.

Wall-clock times are the zone's: a local time the clock skips (spring forward) runs at the first instant after
the gap, once; a local time that happens twice (fall back) runs at its first occurrence only.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
          "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
MAX_RULE = 200              # characters: a rule is short; longer text is refused before parsing
SEARCH_DAYS = 366 * 8 + 2   # a rule that fires at all fires within 8 years (29 February on a given weekday: 28)


class CronError(ValueError):
    """A rule or a time that cannot be read; the message says what and why."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0


FIELDS = (_Field("minute", 0, 59), _Field("hour", 0, 23), _Field("day-of-month", 1, 31),
          _Field("month", 1, 12, MONTH_NAMES, 1), _Field("day-of-week", 0, 7, DAY_NAMES, 0))
_NUMBER = re.compile(r"^[0-9]{1,2}$")  # ASCII only: int() would take other scripts' digits


@dataclass(frozen=True)
class CronRule:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]       # 0 = Sunday … 6 = Saturday (7 folded into 0)
    days_restricted: bool          # day-of-month was not "*"
    weekdays_restricted: bool      # day-of-week was not "*"

    def day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return by_date or by_weekday
        return by_date and by_weekday


def _value(text: str, spec: _Field) -> int:
    lowered = text.lower()
    if lowered in spec.names:
        return spec.names.index(lowered) + spec.name_base
    if not _NUMBER.match(text):
        raise CronError(f"{spec.name}: {text!r} is not a number"
                        + (f" or a name ({', '.join(spec.names)})" if spec.names else ""))
    value = int(text)
    if not spec.low <= value <= spec.high:
        raise CronError(f"{spec.name}: {value} is outside {spec.low}-{spec.high}")
    return value


def _field(text: str, spec: _Field) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{spec.name}: an empty item in {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not _NUMBER.match(step_text) or int(step_text) == 0:
                raise CronError(f"{spec.name}: the step in {part!r} must be a number ≥ 1")
            step = int(step_text)
        if base == "*":
            low, high = spec.low, spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(first, spec), _value(last, spec)
            if low > high:
                raise CronError(f"{spec.name}: the range {base!r} runs backwards")
        else:
            low = _value(base, spec)
            high = spec.high if slash else low  # "5/15": from 5 to the end, every 15
        values.update(range(low, high + 1, step))
    return frozenset(values)


def parse_rule(text: str) -> CronRule:
    """The rule, or CronError naming the field at fault."""
    if not isinstance(text, str) or not text.strip():
        raise CronError("a cron rule has five fields: minute hour day-of-month month day-of-week")
    if len(text) > MAX_RULE:
        raise CronError(f"a cron rule is at most {MAX_RULE} characters")
    cleaned = " ".join(text.split())
    expanded = MACROS.get(cleaned.lower(), cleaned)
    if expanded.startswith("@"):
        raise CronError(f"{cleaned!r} is not one of {', '.join(MACROS)}")
    parts = expanded.split(" ")
    if len(parts) != 5:
        raise CronError(f"a cron rule has five fields (minute hour day-of-month month day-of-week), not {len(parts)}")
    minutes, hours, days, months, weekdays = (_field(p, spec) for p, spec in zip(parts, FIELDS))
    rule = CronRule(cleaned, minutes, hours, days, months, frozenset(d % 7 for d in weekdays),
                    days_restricted=parts[2] != "*", weekdays_restricted=parts[4] != "*")
    if not any(rule.day_matches(dt.date(2028, 1, 1) + dt.timedelta(days=n)) for n in range(366 * 4)):
        raise CronError(f"{cleaned!r} names a day that never comes (like 31 February)")
    return rule


# --- wall-clock times to instants ---------------------------------------------------------------------------

def _exists(local: dt.datetime, zone: ZoneInfo) -> bool:
    back = local.replace(tzinfo=zone).astimezone(dt.timezone.utc).astimezone(zone).replace(tzinfo=None)
    return back == local


def instant_of(local: dt.datetime, zone: ZoneInfo) -> float:
    """The POSIX time of a naive wall-clock time in ``zone``: its first occurrence when it happens twice, the end
    of the gap when the clock skips it."""
    if not _exists(local, zone):
        # The clock jumps over it (gaps are whole minutes): the first minute after that exists is the gap's end.
        probe = local
        for _ in range(24 * 60):
            probe += dt.timedelta(minutes=1)
            if _exists(probe, zone):
                break
        local = probe
    return local.replace(tzinfo=zone, fold=0).timestamp()


def next_after(rule: CronRule, after: float, zone: ZoneInfo) -> float:
    """The first instant the rule names strictly after ``after`` (POSIX seconds)."""
    start_local = dt.datetime.fromtimestamp(after, zone).replace(tzinfo=None)
    # Wall times up to ``after``'s own are never later instants: a repeated hour's times run in its first pass
    # only (fold 0) and a skipped time runs at the gap's end, so only the later ones are compared as instants.
    floor = start_local
    day = floor.date()
    hours, minutes = sorted(rule.hours), sorted(rule.minutes)
    for _ in range(SEARCH_DAYS):
        if rule.day_matches(day):
            for hour in hours:
                if dt.datetime.combine(day, dt.time(hour, 59)) <= floor:
                    continue
                for minute in minutes:
                    wall = dt.datetime.combine(day, dt.time(hour, minute))
                    if wall <= floor:
                        continue
                    candidate = instant_of(wall, zone)
                    if candidate > after:
                        return candidate
        day += dt.timedelta(days=1)
    raise CronError(f"{rule.text!r} does not fire within {SEARCH_DAYS // 366} years")


def parse_local_time(text: str, zone: ZoneInfo) -> float:
    """``YYYY-MM-DD HH:MM[:SS]`` (or with ``T``) in ``zone``, or with an explicit offset (``…+02:00``, ``…Z``)."""
    if not isinstance(text, str) or not text.strip() or len(text) > 40:
        raise CronError("a time is YYYY-MM-DD HH:MM (the server's time zone) or ISO 8601 with an offset")
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(cleaned)
    except ValueError:
        raise CronError(f"{text!r} is not a time: YYYY-MM-DD HH:MM (the server's time zone) "
                        "or ISO 8601 with an offset") from None
    if moment.tzinfo is not None:
        return moment.timestamp()
    return instant_of(moment.replace(microsecond=0), zone)
