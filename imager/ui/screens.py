"""The menu's dialogs, drawn by the ``dialog`` program through pythondialog, sized for 80×24.

``Screens`` is the small set of questions the menu asks (ui/menu.py); ``DialogScreens`` asks them
with dialog on the console. pythondialog starts dialog itself (a library's subprocess, not ours:
it needs the console as its terminal, which imager.process does not give).  On a serial console
(TERM=vt100) the boxes are drawn with ASCII characters, which every terminal shows.
"""
from __future__ import annotations

import os
from typing import Protocol, Sequence

HEIGHT, WIDTH = 20, 76          # every box fits 80×24 with the background title
MAX_HEIGHT = 22                 # 24 lines less the background title
BACKTITLE = "imager - technician's menu"


class Screens(Protocol):
    def choose(self, title: str, text: str, items: Sequence[tuple[str, str]], default: str | None = None) -> str | None:
        """One of the items' tags; None when the technician backs out (Cancel, Esc)."""

    def ask(self, title: str, text: str, init: str = "") -> str | None: ...

    def secret(self, title: str, text: str) -> str | None: ...

    def confirm(self, title: str, text: str) -> bool: ...

    def message(self, title: str, text: str) -> None: ...

    def info(self, title: str, text: str) -> None:
        """Shown while something runs; returns at once."""

    def countdown(self, title: str, text: str, seconds: int) -> bool:
        """True when the countdown ran out; False when the technician stopped it."""


class DialogScreens:
    def __init__(self, backtitle: str = BACKTITLE) -> None:
        import dialog  # pythondialog; only the boot image and the lab need it
        self.d = dialog.Dialog(dialog="dialog", autowidgetsize=False)
        self.d.set_background_title(backtitle)
        if os.environ.get("TERM", "") in ("vt100", "vt102", "vt220", "dumb"):
            self.d.add_persistent_args(["--ascii-lines"])

    def _ok(self, code: str) -> bool:
        return code == self.d.OK

    def choose(self, title: str, text: str, items: Sequence[tuple[str, str]], default: str | None = None) -> str | None:
        text_lines = text.count("\n") + 1
        rows = min(len(items), MAX_HEIGHT - 7 - text_lines)  # borders, list frame and buttons take 7 lines
        kwargs = {"default_item": default} if default else {}
        code, tag = self.d.menu(text, height=rows + 7 + text_lines, width=WIDTH, menu_height=rows,
                                choices=[(t, label[:WIDTH - 14]) for t, label in items], title=title,
                                cancel_label="Back", **kwargs)
        return tag if self._ok(code) else None

    def ask(self, title: str, text: str, init: str = "") -> str | None:
        code, value = self.d.inputbox(text, height=10, width=WIDTH, init=init, title=title)
        return value.strip() if self._ok(code) else None

    def secret(self, title: str, text: str) -> str | None:
        code, value = self.d.passwordbox(text, height=10, width=WIDTH, title=title, insecure=True)
        return value if self._ok(code) else None

    def confirm(self, title: str, text: str) -> bool:
        return self._ok(self.d.yesno(text, height=12, width=WIDTH, title=title))

    def message(self, title: str, text: str) -> None:
        self.d.msgbox(text, height=HEIGHT, width=WIDTH, title=title)

    def info(self, title: str, text: str) -> None:
        self.d.infobox(text, height=7, width=WIDTH, title=title)

    def countdown(self, title: str, text: str, seconds: int) -> bool:
        return self._ok(self.d.pause(text, height=12, width=WIDTH, seconds=seconds, title=title,
                                     ok_label="Go now", cancel_label="Stop"))
