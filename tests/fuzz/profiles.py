"""Hypothesis profiles for the fuzz suite, and its figures (printed by conftest.py after the run).

- ``short`` (default, ``make test``): a few hundred cases in all, well under a minute.
- ``long`` (``make fuzz``, ``HYPOTHESIS_PROFILE=long``): ≥ 100,000 cases in all.

Each fuzz test counts the cases it ran and the 5xx answers it saw; the totals are printed after the run.
"""
from __future__ import annotations

import collections
import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                      HealthCheck.data_too_large, HealthCheck.filter_too_much])
# Cases per test: the routes' test (the costly one) and the TFTP tests share the budget.
PROFILES = {"short": {"routes": 300, "tftp_parser": 300, "tftp_server": 60},
            "long": {"routes": 70_000, "tftp_parser": 30_000, "tftp_server": 3_000}}
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "short")
if PROFILE not in PROFILES:
    raise SystemExit(f"HYPOTHESIS_PROFILE must be one of {', '.join(PROFILES)}, not {PROFILE!r}")
for name in PROFILES:
    settings.register_profile(name, **_COMMON)  # type: ignore[arg-type]
settings.load_profile(PROFILE)


def cases(test: str) -> settings:
    """The settings of one fuzz test under the chosen profile."""
    return settings(max_examples=PROFILES[PROFILE][test])


FIGURES: collections.Counter[str] = collections.Counter()

