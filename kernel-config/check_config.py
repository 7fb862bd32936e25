#!/usr/bin/env python3
"""Check that every symbol a Kconfig fragment sets survived into the resolved .config.

    check_config.py [--prefix CONFIG_] FRAGMENT [FRAGMENT...] DOTCONFIG

Kconfig drops a requested value without a word when the symbol does not exist in this
version, when its dependencies are not met, or when something limits it to =m.  For the
boot kernel that is a missing driver on someone's machine, so this lists each symbol whose
value did not survive and exits 1 if there is any.  The same comparison serves buildroot's
defconfig (``--prefix BR2_``).  Exit status: 0 all survived, 1 some dropped, 2 bad input.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# None stands for "not set" (`# SYM is not set`, or `SYM=n`).
Value = str | None


@dataclass(frozen=True)
class Dropped:
    symbol: str
    wanted: Value
    got: Value
    present: bool  # False: the symbol is not in the .config at all (unknown, or dependencies unmet)

    def __str__(self) -> str:
        if not self.present:
            got = "absent (no such symbol in this tree, or its dependencies are not met)"
        else:
            got = _show(self.got)
        return f"{self.symbol}: wanted {_show(self.wanted)}, got {got}"


def _show(value: Value) -> str:
    return "not set" if value is None else value


class FragmentError(ValueError):
    pass


def parse(text: str, prefix: str = "CONFIG_", source: str = "<text>", strict: bool = False) -> dict[str, Value]:
    """Symbols and values of a fragment or a .config, in file order.

    strict (for fragments): a line that is neither a setting, a comment nor blank is an error,
    and so is a symbol set twice with different values in the same file.
    """
    name = re.escape(prefix) + r"[A-Za-z0-9_]+"
    setting = re.compile(rf"^({name})=(.*)$")
    unset = re.compile(rf"^# ({name}) is not set$")
    values: dict[str, Value] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if match := setting.match(line):
            symbol, value = match.group(1), match.group(2)
            value = None if value == "n" else value
        elif match := unset.match(line):
            symbol, value = match.group(1), None
        elif not line or line.startswith("#"):
            continue
        elif strict:
            raise FragmentError(f"{source}:{number}: not a {prefix}* setting: {raw!r}")
        else:
            continue
        if strict and symbol in values and values[symbol] != value:
            raise FragmentError(f"{source}:{number}: {symbol} set twice ({_show(values[symbol])}, then {_show(value)})")
        values[symbol] = value
    return values


def compare(wanted: dict[str, Value], resolved: dict[str, Value]) -> list[Dropped]:
    """Every wanted symbol whose value did not survive, in the fragment's order."""
    dropped = []
    for symbol, value in wanted.items():
        present = symbol in resolved
        got = resolved.get(symbol)
        if value is None:
            ok = got is None  # not set, or absent: either way it is off
        else:
            ok = present and got == value
        if not ok:
            dropped.append(Dropped(symbol, value, got, present))
    return dropped


def check_files(fragments: list[Path], dotconfig: Path, prefix: str = "CONFIG_") -> tuple[int, list[Dropped]]:
    """(number of symbols checked, dropped ones).  Later fragments override earlier ones, as merge_config does."""
    wanted: dict[str, Value] = {}
    for fragment in fragments:
        wanted.update(parse(fragment.read_text(), prefix, str(fragment), strict=True))
    resolved = parse(dotconfig.read_text(), prefix, str(dotconfig))
    return len(wanted), compare(wanted, resolved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prefix", default="CONFIG_", help="symbol prefix (CONFIG_ for Linux, BR2_ for buildroot)")
    parser.add_argument("fragments", nargs="+", type=Path, metavar="FRAGMENT")
    parser.add_argument("dotconfig", type=Path, metavar="DOTCONFIG")
    args = parser.parse_args(argv)
    try:
        checked, dropped = check_files(args.fragments, args.dotconfig, args.prefix)
    except (OSError, FragmentError) as exc:
        print(f"check_config: {exc}", file=sys.stderr)
        return 2
    names = ", ".join(str(f) for f in args.fragments)
    for item in dropped:
        print(f"DROPPED {item}")
    if dropped:
        print(f"check_config: {len(dropped)} of {checked} symbols from {names} did not survive into {args.dotconfig}")
        return 1
    print(f"check_config: all {checked} symbols from {names} survived into {args.dotconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
