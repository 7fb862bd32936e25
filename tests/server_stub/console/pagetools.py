"""Reading console pages in tests: a small element tree from html.parser, and a page object with status,
headers and the parsed document. Shared by every console test (tests/server_stub/console/conftest.py)."""
from __future__ import annotations

import html.parser
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Iterator

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list["Element | str"] = field(default_factory=list)

    def walk(self) -> Iterator["Element"]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.walk()

    def find_all(self, tag: str | None = None, **attrs: str) -> list["Element"]:
        """Elements with this tag (any if None) whose attributes equal ``attrs`` (class_ → class; a class
        matches one of the element's classes)."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        found = []
        for element in self.walk():
            if tag is not None and element.tag != tag:
                continue
            if all(self._has(element, k, v) for k, v in wanted.items()):
                found.append(element)
        return found

    @staticmethod
    def _has(element: "Element", name: str, value: str) -> bool:
        if name == "class":
            return value in element.attrs.get("class", "").split()
        return element.attrs.get(name) == value

    def find(self, tag: str | None = None, **attrs: str) -> "Element | None":
        found = self.find_all(tag, **attrs)
        return found[0] if found else None

    def by_id(self, element_id: str) -> "Element":
        """The element with this id; AssertionError (with the ids there are) when there is none."""
        found = self.find(id=element_id)
        if found is None:
            ids = sorted(e.attrs["id"] for e in self.walk() if "id" in e.attrs)
            raise AssertionError(f"no element with id {element_id!r}; ids on the page: {ids}")
        return found

    def has_id(self, element_id: str) -> bool:
        return self.find(id=element_id) is not None

    @property
    def text(self) -> str:
        """The visible text, whitespace collapsed."""
        parts: list[str] = []

        def collect(element: Element) -> None:
            for child in element.children:
                if isinstance(child, str):
                    parts.append(child)
                elif child.tag not in ("script", "style"):
                    collect(child)
        collect(self)
        return re.sub(r"\s+", " ", " ".join(parts)).strip()

    def get(self, name: str, default: str = "") -> str:
        return self.attrs.get(name, default)

    def rows(self) -> list[list[str]]:
        """A table's body rows as lists of cell texts (tbody if there is one, else every row with td cells)."""
        body = self.find("tbody") or self
        return [[cell.text for cell in row.children if isinstance(cell, Element) and cell.tag in ("td", "th")]
                for row in body.find_all("tr") if row.find("td") is not None]

    def form_values(self) -> dict[str, str | list[str]]:
        """What a browser would send for this form as it stands (inputs, checked boxes, selected options,
        textareas); names sent more than once give a list."""
        values: dict[str, list[str]] = {}

        def add(name: str, value: str) -> None:
            values.setdefault(name, []).append(value)
        for element in self.walk():
            name = element.attrs.get("name")
            if not name or "disabled" in element.attrs:
                continue
            if element.tag == "input":
                kind = element.attrs.get("type", "text")
                if kind in ("checkbox", "radio"):
                    if "checked" in element.attrs:
                        add(name, element.attrs.get("value", "on"))
                elif kind not in ("submit", "button", "reset", "file", "image"):
                    add(name, element.attrs.get("value", ""))
            elif element.tag == "textarea":
                add(name, element.text)
            elif element.tag == "select":
                options = element.find_all("option")
                chosen = [o for o in options if "selected" in o.attrs] or options[:1]
                for option in chosen if "multiple" in element.attrs else chosen[:1]:
                    add(name, option.attrs.get("value", option.text))
        return {k: v[0] if len(v) == 1 else v for k, v in values.items()}


class _Builder(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v if v is not None else "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v if v is not None else "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        # Close up to the nearest open element of this tag (tolerates an unclosed <p> or <li>).
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(text: str) -> Element:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


@dataclass
class Page:
    """One response: ``status``, ``headers``, ``text``; ``doc`` is the parsed HTML; ``location`` the redirect."""
    status: int
    headers: dict[str, str]
    text: str
    _doc: Element | None = None

    @property
    def doc(self) -> Element:
        if self._doc is None:
            self._doc = parse(self.text)
        return self._doc

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    @property
    def notice(self) -> str:
        """The one-time notice a redirect carries (``?notice=…``), decoded."""
        query = urllib.parse.urlsplit(self.location).query
        return urllib.parse.parse_qs(query).get("notice", [""])[0]

    def by_id(self, element_id: str) -> Element:
        return self.doc.by_id(element_id)

    @property
    def csrf(self) -> str:
        field_ = self.doc.find("input", name="csrf")
        assert field_ is not None, "no anti-forgery field on the page"
        return field_.get("value")

    def form(self, form_id: str) -> Element:
        element = self.by_id(form_id)
        assert element.tag == "form", f"#{form_id} is a <{element.tag}>, not a form"
        return element
