"""Translate a Python ``re`` pattern into a Rust ``regex`` pattern with the same matches, or refuse.

The engines only ask one question of a pattern: does ``re.match`` (anchored at the start, not at
the end) find a match? The translation preserves exactly that, never the match's extent or groups.

Exactness comes from two choices:

- The pattern is parsed by Python's own parser (``re._parser``), so escapes, inline and scoped
  flags, verbose mode and repetition bounds mean what Python says they mean.
- Every construct that consumes one character (a literal under IGNORECASE, ``.``, ``[...]``,
  ``[^x]``, ``\\d \\w \\s`` and their negations) is turned into an explicit set of code points
  computed by running Python's own engine over every code point, then emitted as a Rust class of
  ranges. Case folding, Unicode categories and Unicode versions therefore never depend on the Rust
  side: Rust's ``(?i)``, ``\\w``, ``\\d``, ``\\s`` and ``.`` are never emitted.

What remains is an allowlist of structure with identical semantics: concatenation, alternation,
groups (emitted non-capturing), greedy and lazy repetition (laziness cannot change whether a
match exists), ``\\A``, ``\\Z`` (Rust ``\\z``), ``^``/``$`` under MULTILINE (Rust ``(?m:^)``/``(?m:$)``:
start or after ``\\n`` / end or before ``\\n``), ``^`` without MULTILINE (``\\A``), ``$`` without
MULTILINE only when nothing can follow it (then ``\\n?\\z``), and ``\\b`` under ASCII
(``(?-u:\\b)``). Everything else is refused with a reason: look-ahead and look-behind, back
references, conditionals, possessive repetition and atomic groups (they change which matches
exist), Unicode ``\\b`` (different definitions of a word character), ``\\B`` (Python never matches it
in an empty string, Rust does) and ``$`` in any other position (it would need a look-ahead).
"""

from __future__ import annotations

import importlib
import re
import sys
from array import array
from typing import Any

# `re._parser` and `re._constants` are the standard library's own parser (3.11+); typeshed has
# no stubs for them, and the deprecated `sre_parse` alias would warn.
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

__all__ = ["UnsupportedPattern", "translate"]

_SURROGATES = (0xD800, 0xDFFF)
# Python flags that change what a single-character construct matches.
_CHAR_FLAGS = re.IGNORECASE | re.ASCII | re.DOTALL
_CATEGORY_ESCAPES = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
}


class UnsupportedPattern(ValueError):
    """The pattern uses a construct the Rust engine cannot express exactly; the message says which."""


_EVERY_CODE_POINT: list[str] = []  # filled on first use (1.1 million characters)
# (Python pattern of one character, flags) -> Rust class; bounded, an engine only ever needs a few.
_CLASSES: dict[tuple[str, int], str] = {}
_MAX_CLASSES = 4096


def _every_code_point() -> str:
    """All Unicode scalar values (code points minus surrogates, which a Rust ``&str`` cannot hold), in order."""
    if not _EVERY_CODE_POINT:
        points = array("I", range(_SURROGATES[0]))
        points.extend(range(_SURROGATES[1] + 1, 0x110000))
        _EVERY_CODE_POINT.append(points.tobytes().decode("utf-32-le" if sys.byteorder == "little" else "utf-32-be"))
    return _EVERY_CODE_POINT[0]


def _index_to_code_point(index: int) -> int:
    return index if index < _SURROGATES[0] else index + (_SURROGATES[1] - _SURROGATES[0] + 1)


def _character_class(atom: str, flags: int) -> str:
    """The Rust class of exactly the code points Python's engine accepts for a one-character pattern."""
    known = _CLASSES.get((atom, flags))
    if known is None:
        known = _CLASSES[atom, flags] = _rust_class(_scan(atom, flags))
        if len(_CLASSES) > _MAX_CLASSES:
            _CLASSES.pop(next(iter(_CLASSES)))
    return known


def _scan(atom: str, flags: int) -> tuple[tuple[int, int], ...]:
    """The inclusive code point ranges that Python's engine accepts for a one-character pattern."""
    everything = _every_code_point()
    ranges: list[tuple[int, int]] = []
    for found in re.compile(f"(?:{atom})+", flags).finditer(everything):
        low, high = _index_to_code_point(found.start()), _index_to_code_point(found.end() - 1)
        if low < _SURROGATES[0] < high:  # a run across the surrogate gap is two ranges of scalars
            ranges.extend([(low, _SURROGATES[0] - 1), (_SURROGATES[1] + 1, high)])
        else:
            ranges.append((low, high))
    return tuple(ranges)


def _py_char(code: int) -> str:
    return f"\\U{code:08x}"


def _rust_char(code: int) -> str:
    char = chr(code)
    return char if char.isascii() and char.isalnum() else f"\\x{{{code:X}}}"


def _rust_class(ranges: tuple[tuple[int, int], ...]) -> str:
    if not ranges:
        return r"[^\x{0}-\x{10FFFF}]"  # matches nothing, like Python's `[^\s\S]`
    parts = (_rust_char(low) if low == high else f"{_rust_char(low)}-{_rust_char(high)}" for low, high in ranges)
    return "[" + "".join(parts) + "]"


def _python_atom(op: Any, av: Any) -> str:
    """Python source for one single-character construct of the parse tree (flags are applied separately)."""
    if op is _c.LITERAL:
        return _py_char(av)
    if op is _c.NOT_LITERAL:
        return f"[^{_py_char(av)}]"
    if op is _c.ANY:
        return "."
    # op is IN: a class of literals, ranges, categories, optionally negated (NEGATE comes first).
    parts = []
    for item_op, item_av in av:
        if item_op is _c.NEGATE:
            parts.append("^")
        elif item_op is _c.LITERAL:
            parts.append(_py_char(item_av))
        elif item_op is _c.RANGE:
            parts.append(f"{_py_char(item_av[0])}-{_py_char(item_av[1])}")
        elif item_op is _c.CATEGORY and str(item_av) in _CATEGORY_ESCAPES:
            parts.append(_CATEGORY_ESCAPES[str(item_av)])
        else:
            raise UnsupportedPattern(f"character class item {item_op}")
    return "[" + "".join(parts) + "]"


def _combine(flags: int, add: int, remove: int) -> int:
    if add & re.ASCII:
        flags &= ~re.UNICODE
    if add & re.UNICODE:
        flags &= ~re.ASCII
    return (flags | add) & ~remove


class _Translator:
    def sequence(self, items: Any, flags: int, tail: bool) -> str:
        """Translate a concatenation; ``tail`` says nothing can follow it in the whole pattern."""
        data = list(items)
        out = [self.item(op, av, flags, tail and index == len(data) - 1) for index, (op, av) in enumerate(data)]
        return "(?:" + "".join(out) + ")"

    def item(self, op: Any, av: Any, flags: int, tail: bool) -> str:
        if op is _c.LITERAL and not flags & re.IGNORECASE:
            return _rust_char(av)
        if op in (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN):
            atom = _python_atom(op, av)
            return _character_class(atom, (flags & _CHAR_FLAGS) | (0 if flags & re.ASCII else re.UNICODE))
        if op is _c.AT:
            return self.at(str(av), flags, tail)
        if op is _c.BRANCH:
            return "(?:" + "|".join(self.sequence(alt, flags, tail) for alt in av[1]) + ")"
        if op is _c.SUBPATTERN:
            _group, add, remove, inner = av
            return self.sequence(inner, _combine(flags, add, remove), tail)
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            low, high, inner = av
            bounds = f"{{{low},}}" if high == _c.MAXREPEAT else f"{{{low},{high}}}"
            lazy = "?" if op is _c.MIN_REPEAT else ""
            # With at most one repetition, whatever follows the group follows its content.
            return self.sequence(inner, flags, tail and high <= 1) + bounds + lazy
        raise UnsupportedPattern(_REFUSED.get(str(op), f"the construct {op}"))

    def at(self, code: str, flags: int, tail: bool) -> str:
        multiline = flags & re.MULTILINE
        if code == "AT_BEGINNING_STRING" or (code == "AT_BEGINNING" and not multiline):
            return r"\A"
        if code == "AT_BEGINNING":
            return "(?m:^)"
        if code == "AT_END_STRING":
            return r"\z"
        if code == "AT_END" and multiline:
            return "(?m:$)"
        if code == "AT_END":
            if tail:
                return r"(?:\n?\z)"
            raise UnsupportedPattern("'$' followed by more pattern (it would need a look-ahead)")
        if code == "AT_BOUNDARY" and flags & re.ASCII:
            return r"(?-u:\b)"
        if code == "AT_BOUNDARY":
            raise UnsupportedPattern(r"Unicode '\b' (Python and Rust define word characters differently)")
        raise UnsupportedPattern(r"'\B' (Python never matches it in an empty string, Rust does)")


_REFUSED = {
    "ASSERT": "look-ahead or look-behind assertion",
    "ASSERT_NOT": "negative look-ahead or look-behind assertion",
    "GROUPREF": "back reference",
    "GROUPREF_EXISTS": "conditional group",
    "POSSESSIVE_REPEAT": "possessive repetition",
    "ATOMIC_GROUP": "atomic group",
}


def translate(pattern: str, ignorecase: bool = False) -> str:
    """Return a Rust ``regex`` pattern that matches at the start of a string exactly when ``re.match`` does.

    ``ignorecase`` compiles the Python pattern with ``re.IGNORECASE`` (the content-type pattern).
    Raises `UnsupportedPattern` (a `ValueError`) naming the construct that has no exact Rust form,
    or when Python itself rejects the pattern.
    """
    try:
        parsed = _parser.parse(pattern, re.IGNORECASE if ignorecase else 0)
    except re.error as error:
        raise UnsupportedPattern(f"invalid Python pattern: {error}") from None
    return r"\A" + _Translator().sequence(parsed.data, parsed.state.flags, tail=True)
