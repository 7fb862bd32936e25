"""A small vt100 screen: feed it what a program wrote to the terminal, read back the 80×24 text.

Enough of the escape sequences dialog (ncurses) and blessed use on TERM=vt100 to see what a technician
sees: cursor addressing and moves, erase in line/display; attributes and charset switches are dropped.
Used to assert on screens in tests and to render the README's screenshots.
"""
from __future__ import annotations

import re

_CSI = re.compile(r"\x1b\[([?>]?)([0-9;]*)([A-Za-z@])")
_PADDING = re.compile(r"\$<[0-9.]+[*/]*>")


class Screen:
    def __init__(self, width: int = 80, height: int = 24) -> None:
        self.width, self.height = width, height
        self.cells = [[" "] * width for _ in range(height)]
        self.x = self.y = 0

    def lines(self) -> list[str]:
        return ["".join(row).rstrip() for row in self.cells]

    def text(self) -> str:
        return "\n".join(self.lines()).rstrip("\n")

    def _scroll(self) -> None:
        self.cells.pop(0)
        self.cells.append([" "] * self.width)
        self.y = self.height - 1

    def feed(self, data: str) -> "Screen":
        data = _PADDING.sub("", data)
        i = 0
        while i < len(data):
            c = data[i]
            if c == "\x1b":
                match = _CSI.match(data, i)
                if match:
                    self._csi(match.group(1), match.group(2), match.group(3))
                    i = match.end()
                    continue
                i += 3 if data[i + 1:i + 2] in ("(", ")") else 2  # charset selection, keypad modes, 7/8
                continue
            if c == "\r":
                self.x = 0
            elif c == "\n":
                self.y += 1
                if self.y >= self.height:
                    self._scroll()
            elif c == "\b":
                self.x = max(0, self.x - 1)
            elif c >= " ":
                if self.x >= self.width:
                    self.x = 0
                    self.y += 1
                    if self.y >= self.height:
                        self._scroll()
                self.cells[self.y][self.x] = c
                self.x += 1
            i += 1
        return self

    def _csi(self, private: str, params: str, final: str) -> None:
        if private:
            return  # modes (?1h, ?25l …)
        nums = [int(p) if p else 0 for p in params.split(";")] if params else []
        n = (nums[0] or 1) if nums else 1
        if final in "Hf":
            row = (nums[0] if nums and nums[0] else 1)
            col = (nums[1] if len(nums) > 1 and nums[1] else 1)
            self.y, self.x = min(row, self.height) - 1, min(col, self.width) - 1
        elif final == "A":
            self.y = max(0, self.y - n)
        elif final == "B":
            self.y = min(self.height - 1, self.y + n)
        elif final == "C":
            self.x = min(self.width - 1, self.x + n)
        elif final == "D":
            self.x = max(0, self.x - n)
        elif final == "d":
            self.y = min(n, self.height) - 1
        elif final == "G":
            self.x = min(n, self.width) - 1
        elif final == "K":
            mode = nums[0] if nums else 0
            start, end = {0: (self.x, self.width), 1: (0, self.x + 1), 2: (0, self.width)}[mode]
            for x in range(start, end):
                self.cells[self.y][x] = " "
        elif final == "J":
            mode = nums[0] if nums else 0
            rows = {0: range(self.y + 1, self.height), 1: range(0, self.y), 2: range(self.height)}[mode]
            for y in rows:
                self.cells[y] = [" "] * self.width
            if mode == 0:
                for x in range(self.x, self.width):
                    self.cells[self.y][x] = " "
        # m (attributes), r (scroll region), h/l: nothing to draw
