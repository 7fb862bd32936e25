"""The cron parser and the next instant a rule names, in a real time zone with its DST changes (pure)."""
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from server_stub.cron import CronError, next_after, parse_local_time, parse_rule

BERLIN = ZoneInfo("Europe/Berlin")   # DST 2026: 29 March 02:00 → 03:00, 25 October 03:00 → 02:00
UTC = ZoneInfo("UTC")


def local(text, zone=BERLIN):
    return parse_local_time(text, zone)


def shown(instant, zone=BERLIN):
    return dt.datetime.fromtimestamp(instant, zone).strftime("%Y-%m-%d %H:%M %Z")


def runs(rule, start, count, zone=BERLIN):
    parsed, t, out = parse_rule(rule), local(start, zone), []
    for _ in range(count):
        t = next_after(parsed, t, zone)
        out.append(shown(t, zone))
    return out


@pytest.mark.parametrize("rule, minutes, hours, days, months, weekdays", [
    ("* * * * *", set(range(60)), set(range(24)), set(range(1, 32)), set(range(1, 13)), set(range(7))),
    ("0,30 2 * * sun", {0, 30}, {2}, set(range(1, 32)), set(range(1, 13)), {0}),
    ("*/15 8-17/3 1,15 jan-mar MON-fri", {0, 15, 30, 45}, {8, 11, 14, 17}, {1, 15}, {1, 2, 3}, {1, 2, 3, 4, 5}),
    ("5/20 0 * * 7", {5, 25, 45}, {0}, set(range(1, 32)), set(range(1, 13)), {0}),
    ("0 0 * * 5-7", {0}, {0}, set(range(1, 32)), set(range(1, 13)), {5, 6, 0}),
    ("@weekly", {0}, {0}, set(range(1, 32)), set(range(1, 13)), {0}),
    ("  0   3  *  *  *  ", {0}, {3}, set(range(1, 32)), set(range(1, 13)), set(range(7))),
])
def test_fields(rule, minutes, hours, days, months, weekdays):
    parsed = parse_rule(rule)
    assert (set(parsed.minutes), set(parsed.hours), set(parsed.days), set(parsed.months),
            set(parsed.weekdays)) == (minutes, hours, days, months, weekdays)


@pytest.mark.parametrize("rule, words", [
    ("", "five fields"),
    ("0 2 * *", "five fields (minute hour day-of-month month day-of-week), not 4"),
    ("0 2 * * * *", "not 6"),
    ("60 * * * *", "minute: 60 is outside 0-59"),
    ("0 24 * * *", "hour: 24 is outside 0-23"),
    ("0 0 0 * *", "day-of-month: 0 is outside 1-31"),
    ("0 0 * 13 *", "month: 13 is outside 1-12"),
    ("0 0 * * 8", "day-of-week: 8 is outside 0-7"),
    ("0 0 * * sunday", "day-of-week: 'sunday' is not a number or a name (sun, mon"),
    ("*/0 * * * *", "the step in '*/0' must be a number ≥ 1"),
    ("5-1 * * * *", "the range '5-1' runs backwards"),
    ("1,,2 * * * *", "an empty item"),
    ("-1 * * * *", "minute: '' is not a number"),
    ("0 0 31 2 *", "a day that never comes"),
    ("0 0 30 feb *", "a day that never comes"),
    ("@reboot", "is not one of @hourly"),
    ("0 0 * * *" + " " * 300, "at most 200 characters"),
    ("１ * * * *", "is not a number"),  # a full-width digit is not one of cron's
])
def test_refusals_name_the_field(rule, words):
    with pytest.raises(CronError) as refused:
        parse_rule(rule)
    assert words in str(refused.value)


def test_every_sunday_at_two():
    assert runs("0 2 * * sun", "2026-12-02 12:00", 3) == [
        "2026-12-06 02:00 CET", "2026-12-13 02:00 CET", "2026-12-20 02:00 CET"]


def test_strictly_after_even_on_the_minute():
    rule = parse_rule("0 2 * * *")
    at_two = local("2026-12-06 02:00")
    assert shown(next_after(rule, at_two, BERLIN)) == "2026-12-07 02:00 CET"
    assert shown(next_after(rule, at_two - 0.5, BERLIN)) == "2026-12-06 02:00 CET"


def test_day_of_month_or_day_of_week_when_both_are_given():
    # Vixie cron: the 13th, or any Friday
    assert runs("0 0 13 * fri", "2026-11-01 00:00", 4) == [
        "2026-11-06 00:00 CET", "2026-11-13 00:00 CET", "2026-11-20 00:00 CET", "2026-11-27 00:00 CET"]
    assert runs("0 0 13 * *", "2026-11-01 00:00", 1) == ["2026-11-13 00:00 CET"]


def test_leap_day():
    assert runs("0 12 29 2 *", "2026-01-01 00:00", 2) == ["2028-02-29 12:00 CET", "2032-02-29 12:00 CET"]


def test_spring_forward_a_skipped_time_runs_once_at_the_end_of_the_gap():
    # 02:30 does not exist on 29 March 2026: the run is at 03:00 CEST, the first instant after the gap
    assert runs("30 2 * * *", "2026-03-27 12:00", 4) == [
        "2026-03-28 02:30 CET", "2026-03-29 03:00 CEST", "2026-03-30 02:30 CEST", "2026-03-31 02:30 CEST"]
    # every quarter hour through the gap: the skipped ones become one run at 03:00, not four
    assert runs("*/15 1-3 29 3 *", "2026-03-29 01:40", 4) == [
        "2026-03-29 01:45 CET", "2026-03-29 03:00 CEST", "2026-03-29 03:15 CEST", "2026-03-29 03:30 CEST"]


def test_fall_back_an_ambiguous_time_runs_once_at_its_first_occurrence():
    # 02:30 happens twice on 25 October 2026 (CEST, then CET): one run, the first
    assert runs("30 2 * * *", "2026-10-24 12:00", 3) == [
        "2026-10-25 02:30 CEST", "2026-10-26 02:30 CET", "2026-10-27 02:30 CET"]
    hourly = runs("0 * * * *", "2026-10-25 00:30", 4)
    assert hourly == ["2026-10-25 01:00 CEST", "2026-10-25 02:00 CEST", "2026-10-25 03:00 CET",
                      "2026-10-25 04:00 CET"]
    # asked from inside the repeated hour's second pass: its times ran in the first pass, so the next is 03:00
    second_pass = dt.datetime(2026, 10, 25, 2, 10, tzinfo=BERLIN, fold=1).timestamp()
    assert shown(next_after(parse_rule("*/20 * * * *"), second_pass, BERLIN)) == "2026-10-25 03:00 CET"


def test_in_utc_and_another_zone():
    assert runs("0 2 * * sun", "2026-12-02 12:00", 1, UTC) == ["2026-12-06 02:00 UTC"]
    sydney = ZoneInfo("Australia/Sydney")   # DST starts 4 October 2026 02:00 → 03:00
    assert runs("30 2 4 10 *", "2026-10-01 00:00", 1, sydney) == ["2026-10-04 03:00 AEDT"]


def test_local_times():
    assert shown(local("2026-12-06 02:00")) == "2026-12-06 02:00 CET"
    assert shown(local("2026-12-06T02:00:00")) == "2026-12-06 02:00 CET"
    assert local("2026-12-06T01:00:00Z") == local("2026-12-06 02:00")
    assert local("2026-12-06 03:00+02:00") == local("2026-12-06 02:00")
    assert shown(local("2026-03-29 02:30")) == "2026-03-29 03:00 CEST"      # skipped forward
    assert shown(local("2026-10-25 02:30")) == "2026-10-25 02:30 CEST"      # the first of the two
    for bad in ("tomorrow", "2026-13-01 00:00", "", "2026-12-06 25:00", "9" * 50):
        with pytest.raises(CronError) as refused:
            local(bad)
        assert "YYYY-MM-DD HH:MM" in str(refused.value)


def reference_next(rule, after, zone):
    """A slow, obvious answer: walk the real minutes after ``after``; a minute fires when its wall time matches,
    except a repeated hour's second pass; after a gap, the first minute fires if a skipped wall time matched."""
    instant = (int(after) // 60 + 1) * 60
    previous = dt.datetime.fromtimestamp(instant - 60, zone).replace(tzinfo=None)
    while True:
        moment = dt.datetime.fromtimestamp(instant, zone)
        wall = moment.replace(tzinfo=None)

        def matches(w):
            return w.minute in rule.minutes and w.hour in rule.hours and rule.day_matches(w.date())
        skipped = []
        probe = previous + dt.timedelta(minutes=1)
        while probe < wall:  # the wall minutes the clock jumped over (a gap)
            skipped.append(probe)
            probe += dt.timedelta(minutes=1)
        if (matches(wall) and not moment.fold) or any(matches(w) for w in skipped):
            return float(instant)
        previous, instant = wall, instant + 60


@pytest.mark.parametrize("rule", ["*/7 * * * *", "30 2 * * *", "0,15,59 1-3 * * *", "*/20 2 * 10 *",
                                  "5 2 29 * sun", "59 1 * * *", "0 3 * * *", "45 2 * 3,10 *"])
@pytest.mark.parametrize("start", ["2026-03-28 23:50", "2026-03-29 01:58", "2026-03-29 02:59+02:00",
                                   "2026-10-25 01:55", "2026-10-25 02:30+02:00", "2026-10-25 02:30+01:00"])
def test_the_same_answers_as_walking_every_minute(rule, start):
    parsed, t = parse_rule(rule), local(start)
    for _ in range(6):
        expected = reference_next(parsed, t, BERLIN)
        got = next_after(parsed, t, BERLIN)
        assert shown(got) == shown(expected) and got == expected, (rule, shown(t))
        t = got
