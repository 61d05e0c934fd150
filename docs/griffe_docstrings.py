"""A griffe extension for the API reference: the package's docstrings as Markdown.

The docstrings are Google style with reStructuredText roles (``:class:`~x.Y```), which
Markdown would show as they are written. Before a docstring is parsed this rewrites

- each role into a cross-reference that links when its target is in the reference
  and is plain code when it is not (autorefs' optional references);
- an ``Args:`` entry that documents several parameters at once (``a, b: ...``) into
  one entry per parameter, as the Google parser expects;
- a ``Raises:`` section whose entries do not start with an exception name into a
  plain paragraph;
- a literal block (a paragraph ending in ``::`` and the indented lines after it) into
  a fenced code block.

Only the text handed to the docs changes; the package's source is left alone.
"""

from __future__ import annotations

import ast
import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|data|mod|exc|obj):`(?P<target>[^`]+)`")
_SECTION = re.compile(r"^(?P<indent> *)(?P<name>[A-Z][A-Za-z ]*):\s*$")
_ARGS = {"Args", "Arguments", "Parameters", "Keyword Args", "Keyword Arguments", "Attributes"}
_NAMES = re.compile(r"^[A-Za-z_*]\w*(?:\s*,\s*[A-Za-z_*]\w*)*\s*,?$")
_EXCEPTION_ITEM = re.compile(r"^[A-Za-z_][\w.]*(?:\s*\|\s*[A-Za-z_][\w.]*)*\s*:")


def _role(match: re.Match[str], scope: griffe.Object) -> str:
    target = match["target"].strip()
    title = target
    if "<" in target and target.endswith(">"):  # :class:`text <target>`
        title, _, target = target[:-1].partition("<")
        title, target = title.strip(), target.strip()
    elif target.startswith("~"):
        target = target[1:]
        title = target.rpartition(".")[2]
    target = target.removesuffix("()")
    identifier = _qualify(target, scope)
    return (
        f'<autoref identifier="{html.escape(identifier)}" optional>'
        f"<code>{html.escape(title)}</code></autoref>"
    )


def _qualify(target: str, scope: griffe.Object) -> str:
    """The full path of ``target`` as written in ``scope``'s docstring, if it resolves."""
    if target.startswith("organic_scoring"):
        return target
    head, _, rest = target.partition(".")
    for holder in (scope, scope.parent):
        if holder is None:
            continue
        if head in holder.members:
            return f"{holder.path}.{target}"
        try:
            resolved = holder.resolve(head)
        except (griffe.NameResolutionError, AttributeError):
            continue
        return f"{resolved}.{rest}" if rest else resolved
    return target


def _split_grouped_args(lines: list[str]) -> list[str]:
    """``a, b: text`` entries of an ``Args:`` section become one entry per name."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        header = _SECTION.match(lines[i])
        out.append(lines[i])
        i += 1
        if not header or header["name"] not in _ARGS:
            continue
        base = len(header["indent"])
        item_indent: int | None = None
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            indent = len(line) - len(line.lstrip())
            if stripped and indent <= base:
                break  # the section ended
            if not stripped:
                out.append(line)
                i += 1
                continue
            if item_indent is None:
                item_indent = indent
            if indent != item_indent:
                out.append(line)
                i += 1
                continue
            # An entry: its names may wrap over several lines before the colon.
            names_part, j = stripped, i
            while _NAMES.match(names_part) and j + 1 < len(lines):
                j += 1
                names_part = f"{names_part} {lines[j].strip()}"
            name, colon, description = names_part.partition(":")
            if not colon or "," not in name:
                out.append(line)
                i += 1
                continue
            names = [n.strip() for n in name.split(",") if n.strip()]
            continuation: list[str] = []
            k = j + 1
            while k < len(lines) and (
                not lines[k].strip() or len(lines[k]) - len(lines[k].lstrip()) > item_indent
            ):
                continuation.append(lines[k])
                k += 1
            while continuation and not continuation[-1].strip():
                continuation.pop()
                k -= 1
            pad = " " * item_indent
            for each in names:
                out.append(f"{pad}{each}:{description}")
                out.extend(continuation)
            i = k
    return out


def _loosen_raises(lines: list[str]) -> list[str]:
    """A ``Raises:`` section whose entries are prose becomes a paragraph."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        header = _SECTION.match(lines[i])
        if not header or header["name"] != "Raises":
            out.append(lines[i])
            i += 1
            continue
        base = len(header["indent"])
        j = i + 1
        body: list[str] = []
        while j < len(lines) and (
            not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > base
        ):
            body.append(lines[j])
            j += 1
        entries = [line for line in body if line.strip()]
        item_indent = min(len(line) - len(line.lstrip()) for line in entries) if entries else 0
        firsts = [line.strip() for line in entries if len(line) - len(line.lstrip()) == item_indent]
        if firsts and all(_EXCEPTION_ITEM.match(first) for first in firsts):
            out.append(lines[i])
            out.extend(body)
        else:
            pad = header["indent"]
            out.append(f"{pad}*Raises:* " + " ".join(line.strip() for line in entries))
            out.append("")
        i = j
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _fence_literal_blocks(lines: list[str]) -> list[str]:
    """``text::`` and the indented block after it become ``text:`` and a fenced block."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::"):
            out.append(line)
            i += 1
            continue
        base = _indent(line)
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j == len(lines) or _indent(lines[j]) <= base:
            out.append(line)
            i += 1
            continue
        k = j
        while k < len(lines) and (not lines[k].strip() or _indent(lines[k]) > base):
            k += 1
        block = lines[j:k]
        while block and not block[-1].strip():
            block.pop()
        depth = min(_indent(each) for each in block if each.strip())
        code = [each[depth:] for each in block]
        try:
            ast.parse("\n".join(code))
            language = "python"
        except SyntaxError:
            language = "text"
        text = line.rstrip()
        if text.strip() != "::":
            out.append(text[:-3] if text.endswith(" ::") else text[:-1])
            out.append("")
        pad = " " * base
        out.append(f"{pad}```{language}")
        out.extend(f"{pad}{each}" if each else "" for each in code)
        out.append(f"{pad}```")
        out.append("")
        i = k
    return out


def rewrite(text: str, scope: griffe.Object) -> str:
    """``text``, a docstring of ``scope``, with the rewrites this module describes."""
    lines = _fence_literal_blocks(text.splitlines())
    lines = _loosen_raises(_split_grouped_args(lines))
    return _ROLE.sub(lambda match: _role(match, scope), "\n".join(lines))


class MarkdownDocstrings(griffe.Extension):
    """Rewrite every docstring of a package once it is loaded (see the module's docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """griffe 2: the package is loaded."""
        _rewrite_tree(pkg)

    def on_package_loaded(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """griffe 1: the package is loaded."""
        _rewrite_tree(pkg)


def _rewrite_tree(obj: griffe.Object) -> None:
    if obj.docstring is not None:
        obj.docstring.value = rewrite(obj.docstring.value, obj)
    for member in obj.members.values():
        if not member.is_alias:
            _rewrite_tree(member)  # type: ignore[arg-type]
