"""The pure-Python header engine (always available); semantics in `c2c_headers._engine`'s docstring.

Speed comes from doing per request only what depends on the request: the rendered values, the
order of the edits and the set of names each rule set touches are folded once per distinct set of
applicable rules ("plan", cached), so applying the default rules is one list comprehension over the
response headers plus one ``extend``. Which rules match a request is kept per ``(netloc, path,
method)`` in a bounded cache (`_MAX_MATCHES`), so a repeated request costs one dict lookup; a miss
runs the path patterns by blocks of marker alternations (see `_BLOCK`).
"""

from __future__ import annotations

import os
import re
from binascii import b2a_base64
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from os import urandom
from re import _constants as _sre_constants  # type: ignore[attr-defined]
from re import _parser as _sre_parser  # type: ignore[attr-defined]
from typing import Final, NamedTuple

from c2c_headers._engine import CSP_NONCE_PLACEHOLDER, CompiledRule
from c2c_headers._scope import request_target
from c2c_headers.types import Scope

_PLACEHOLDER: Final = CSP_NONCE_PLACEHOLDER.encode("latin-1")
_CACHE_CONTROL: Final = b"cache-control"
_NO_STORE: Final = (b"cache-control", b"no-store")
_CONTENT_TYPE: Final = b"content-type"
# Bound on the plan caches: rule subsets are chosen by (attacker-controlled) requests.
_MAX_PLANS: Final = 1024
# Bound on the cache of matched rule sets per request target: entries, and characters of netloc
# plus path per entry (a longer target is matched every time), so at most a few MiB.
_MAX_MATCHES: Final = 4096
_MAX_TARGET: Final = 512

_Matcher = Callable[[str], "re.Match[str] | None"]
_Header = tuple[bytes, bytes]
# A path rule's test: (the rule's bit, path matcher, methods, a literal every match contains or "").
# Rule sets are ints, bit i for rule i; netloc patterns are answered per netloc (`PythonEngine._hosts`)
# as the set of rules whose netloc test passes, so a test reads one bit of it.
_Test = tuple[int, "_Matcher", "frozenset[str] | None", str]
# An alternation of a block's path patterns from some position on, and the position (in the block)
# of the pattern each of its groups closes (-1 for the patterns' own groups).
_Suffix = tuple["_Matcher", tuple[int, ...]]
# The path rules, in the order `_select_rules` visits them: (does the pattern see the path with its
# leading slash?, a block of path rules with its alternations, or None for one rule tested alone, the tests).
_Segment = tuple[bool, "_Block | None", tuple[_Test, ...]]
# Path patterns are tested by blocks of up to _BLOCK patterns of one path form (with or without the
# leading slash): one alternation of the block's patterns, each followed by an empty marker group,
# finds the first pattern that matches in a single call into the C regex engine (``lastindex`` is
# its marker), then the alternation of the patterns after it finds the next one, and so on: a block
# costs one call plus one per matching rule, whatever its size. The alternations after the first
# are compiled when a request first needs them (at most one per rule, of at most _BLOCK patterns).
_BLOCK: Final = 64
# Text that may refer to a group by number or name: such a pattern is never put in an alternation
# (the numbers would shift), it is tested alone.
_GROUP_REFERENCE: Final = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")


def _path_segments(
    rules: tuple[CompiledRule, ...], tests: list[tuple[_Matcher | None, _Matcher | None, frozenset[str] | None]]
) -> tuple[_Segment, ...]:
    """The path rules of one path form grouped in blocks. The path rules are visited grouped by kind
    (patterns with the slash, without it, patterns tested alone), each group in rule order: a
    request's matches are a set of bits, whatever the visiting order. Rules without a path pattern
    are not here (`PythonEngine._host_matches` answers them once per netloc)."""
    return tuple(_segments(rules, tests, _matching_order(rules)))


def _matching_order(rules: tuple[CompiledRule, ...]) -> list[int]:
    """The path rules' indices grouped so that the patterns of one form form as few blocks as possible."""

    def kind(index: int) -> int:
        pattern = rules[index].path_pattern
        if pattern is not None and _GROUP_REFERENCE.search(pattern):
            return 2
        return 0 if rules[index].path_with_slash else 1

    return sorted((index for index, rule in enumerate(rules) if rule.path_pattern is not None), key=kind)


def _required_literal(pattern: str) -> str:
    """The longest run of plain characters at the top level of ``pattern``: text every match
    contains, so that ``literal in subject`` can rule a subject out before the regex runs
    (``"c2c"`` for ``^(.*/)?c2c/?$``). ``""`` (no prefilter) when the pattern has none, ignores
    case, or cannot be read (the parser is CPython's, ``re._parser``: any failure costs the
    prefilter only)."""
    try:
        parsed = _sre_parser.parse(pattern)
        if parsed.state.flags & (re.IGNORECASE | re.LOCALE):
            return ""
        best, run = "", ""
        for operation, argument in parsed:
            if operation is _sre_constants.LITERAL:
                run += chr(argument)
                continue
            best, run = max(best, run, key=len), ""
        return max(best, run, key=len)
    except Exception:  # an optimisation only: never a reason to refuse a rule
        return ""


def _segments(
    rules: tuple[CompiledRule, ...],
    tests: list[tuple[_Matcher | None, _Matcher | None, frozenset[str] | None]],
    order: Sequence[int],
) -> list[_Segment]:
    """The path rules in ``order`` as ``(path form, segment)``: consecutive path patterns of one
    form in blocks of up to `_BLOCK`, a pattern that refers to a group alone."""
    segments: list[_Segment] = []
    block: list[_Test] = []
    patterns: list[str] = []
    block_form = True
    for index in order:
        rule = rules[index]
        _, path, methods = tests[index]
        pattern = rule.path_pattern
        if pattern is None or path is None:  # pragma: no cover (`_matching_order` keeps path rules only)
            continue
        test = (1 << index, path, methods, _required_literal(pattern))
        if _GROUP_REFERENCE.search(pattern):
            segments += _block(block_form, block, patterns)
            block, patterns = [], []
            segments.append((rule.path_with_slash, None, (test,)))
            continue
        if block and block_form != rule.path_with_slash:
            segments += _block(block_form, block, patterns)
            block, patterns = [], []
        block_form = rule.path_with_slash
        block.append(test)
        patterns.append(pattern)
        if len(block) >= _BLOCK:
            segments += _block(block_form, block, patterns)
            block, patterns = [], []
    segments += _block(block_form, block, patterns)
    return segments


def _block(form: bool, tests: list[_Test], patterns: list[str]) -> list[_Segment]:
    """The segments of one block: one with its suffix alternations when it holds two tests or more
    and the patterns combine, else one per test (none for an empty block)."""
    if len(tests) >= 2:
        try:
            block = _Block(patterns)
        except re.error:  # e.g. inline global flags, duplicate group names: test them alone
            pass
        else:
            return [(form, block, tuple(tests))]
    return [(form, None, (test,)) for test in tests]


class _Block:
    """The alternations of a block's path patterns: ``suffixes[i]`` is `_alternation` of the
    patterns from position ``i`` on (None until a request needs it)."""

    __slots__ = ("patterns", "suffixes")

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = tuple(patterns)
        # The whole block's alternation now: re.error here means the patterns do not combine (any
        # suffix of combining patterns combines too).
        self.suffixes: list[_Suffix | None] = [_alternation(self.patterns, 0)]
        self.suffixes += [None] * (len(patterns) - 1)

    def suffix(self, first: int) -> _Suffix:
        """The alternation of the patterns from position ``first`` on, compiled on first use."""
        suffix = self.suffixes[first]
        if suffix is None:
            suffix = self.suffixes[first] = _alternation(self.patterns[first:], first)
        return suffix


def _alternation(patterns: Sequence[str], first: int) -> _Suffix:
    """``(?:p)()|(?:q)()|...`` of ``patterns`` (the block's from position ``first`` on): the match's
    ``lastindex`` is the marker of the first pattern that matches (nothing follows a marker), mapped
    to that pattern's position in the block. Raises re.error when the patterns do not combine."""
    positions = [-1]  # group 0, the whole match
    for offset, pattern in enumerate(patterns):
        positions += [-1] * re.compile(pattern).groups  # the pattern's own groups close before its marker
        positions.append(first + offset)
    return re.compile("|".join(f"(?:{pattern})()" for pattern in patterns)).match, tuple(positions)


_NONCE_BATCH: Final = 256  # nonces drawn from one call to os.urandom
# A nonce is 16 random bytes (128 bits), 24 characters of base64 with its "==" padding. A batch is
# encoded in one call: each nonce's 16 bytes are followed by 2 zero bytes (18 bytes: six whole
# groups of 3), whose base64 is the nonce's own with "AA" in place of "==".
_NONCE_STRIDE: Final = 18
_NONCE_ZEROS: Final = bytes(_NONCE_BATCH)
_NONCE_PADDING: Final = b"=" * _NONCE_BATCH
_NONCE_SLICES: Final = tuple(slice(24 * number, 24 * number + 24) for number in range(_NONCE_BATCH))
_CSP_SOURCE: Final = b"'nonce-%s'"  # what replaces the placeholder in a header


# A nonce: (its text, the CSP source ``'nonce-<base64>'`` as bytes).
_Nonce = tuple[str, bytes]


class _NoncePool:
    """Fresh nonces, 128 bits each from ``os.urandom``, the random bytes read in batches.

    One ``os.urandom(16 * 256)`` serves 256 nonces (one ``os.urandom(16)`` per request cost about
    as much as the rest of a nonce page's header work). Each nonce is handed out once, as
    `_Nonce` (the state's value, the CSP source), by ``next()`` on an iterator made
    of C iterators only (``zip``, ``map`` and slicing of the batch's base64), which one thread at
    a time runs, so no nonce is given twice. A forked child drops the batch it inherited
    (`os.register_at_fork`): a worker never repeats its parent's nonces, nor a sibling's.
    """

    __slots__ = ("nonces",)

    def __init__(self) -> None:
        self.nonces: Iterator[_Nonce] = iter(())

    def reset(self) -> None:
        """Forget the current batch (in a forked child)."""
        self.nonces = iter(())

    def refill(self) -> _Nonce:
        """Draw a new batch and return its first nonce (the current batch is used up)."""
        data = bytearray(urandom(_NONCE_STRIDE * _NONCE_BATCH))
        data[16::_NONCE_STRIDE] = data[17::_NONCE_STRIDE] = _NONCE_ZEROS  # 16 random bytes a nonce
        encoded = bytearray(b2a_base64(data, newline=False))
        encoded[22::24] = encoded[23::24] = _NONCE_PADDING  # "AA" -> "=="
        raw = bytes(encoded)
        text = raw.decode("ascii")
        nonces = zip(
            map(text.__getitem__, _NONCE_SLICES),
            map(_CSP_SOURCE.__mod__, map(raw.__getitem__, _NONCE_SLICES)),
            strict=True,
        )
        self.nonces = nonces
        return next(nonces)

    def next_nonce(self) -> _Nonce:
        """The next nonce (text, CSP source)."""
        try:
            return next(self.nonces)
        except StopIteration:
            return self.refill()


_NONCES: Final = _NoncePool()
if hasattr(os, "register_at_fork"):  # pragma: no branch (POSIX)
    os.register_at_fork(after_in_child=_NONCES.reset)


def new_nonce() -> str:
    """A fresh nonce: 128 bits from the operating system's CSPRNG (``os.urandom``, what
    ``secrets.token_bytes`` calls), standard base64 with padding (24 characters).

    Read in batches (`_NoncePool`); never handed out twice, and dropped by a forked child.
    """
    return _NONCES.next_nonce()[0]


class _EditPlan:
    """The folded edits of one sequence of applicable rules without ``keep_existing`` edits."""

    __slots__ = ("appended", "appended_no_store", "cache_control", "placeholder", "substitutions", "touched")

    def __init__(self, edits: Sequence[tuple[bytes, bytes | None]]) -> None:
        touched: set[bytes] = set()
        appended: dict[bytes, bytes] = {}
        for name, value in edits:
            touched.add(name)
            appended.pop(name, None)  # re-inserting moves the header to the end, as the contract says
            if value is not None:
                appended[name] = value
        self.touched: frozenset[bytes] = frozenset(touched)
        self.appended: tuple[_Header, ...] = tuple(appended.items())
        # (position in `appended`, name, value split around the placeholder) for the nonce substitution
        self.substitutions = tuple(
            (position, name, value.split(_PLACEHOLDER))
            for position, (name, value) in enumerate(self.appended)
            if _PLACEHOLDER in value
        )
        self.placeholder = bool(self.substitutions)
        self.cache_control = _CACHE_CONTROL in appended
        self.appended_no_store = (*self.appended, _NO_STORE)  # `_with_nonce` appends both at once


class _Plan:
    """The rules one request matched; doubles as the `RequestMatch` of a request without nonce."""

    __slots__ = (
        "_edit_plans",
        "content_type",
        "content_type_matchers",
        "keep",
        "needs_nonce",
        "nonce",
        "rules",
        "static",
    )

    def __init__(self, rules: tuple[CompiledRule, ...], content_type_matchers: tuple[_Matcher | None, ...]) -> None:
        self.rules = rules
        self.content_type_matchers = content_type_matchers
        self.nonce: str | None = None
        self.needs_nonce = any(rule.nonce for rule in rules)
        self.keep = any(rule.keep_existing for rule in rules)
        self.content_type = any(rule.content_type_pattern is not None for rule in rules)
        response_free = all(
            rule.status_low == 0 and rule.status_high == 999 and rule.content_type_pattern is None for rule in rules
        )
        self._edit_plans: dict[tuple[int, ...], _EditPlan] = {}
        # When no rule looks at the response and none keeps existing headers, one plan serves all.
        self.static = (
            _EditPlan([edit for rule in rules for edit in rule.edits]) if response_free and not self.keep else None
        )

    def edit_plan(self, selected: tuple[int, ...]) -> _EditPlan:
        plan = self._edit_plans.get(selected)
        if plan is None:
            plan = _EditPlan([edit for index in selected for edit in self.rules[index].edits])
            if len(self._edit_plans) < _MAX_PLANS:
                self._edit_plans[selected] = plan
        return plan


# The cache's "not there" (a plan no request can get: it is never stored).
_MISS: Final = _Plan((), ())


class _NonceMatch(NamedTuple):
    """A `RequestMatch` carrying a fresh nonce (`new_nonce`), as str and as the bytes of the headers.

    A named tuple: built by `_nonce_match` without a Python call (one per nonce request).
    """

    plan: _Plan
    nonce: str
    source: bytes  # b"'nonce-" + the nonce + b"'", what replaces the placeholder

    @property
    def token(self) -> bytes:
        """The nonce's base64 bytes (the application's headers are searched for them)."""
        return self.source[7:-1]


# _NonceMatch((plan, nonce, source)) at C speed (a NamedTuple's own constructor is Python code).
_nonce_match: Final[Callable[[tuple[_Plan, str, bytes]], _NonceMatch]] = partial(tuple.__new__, _NonceMatch)


class PythonEngine:
    """The pure-Python engine: ``re`` patterns, folded edit plans; satisfies `Engine`."""

    name: Final = "python"

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        """Compile the patterns of ``rules`` (already validated, rendered and sorted)."""
        self._rules = tuple(rules)
        tests: list[tuple[_Matcher | None, _Matcher | None, frozenset[str] | None]] = []
        content_type: list[_Matcher | None] = []
        for rule in self._rules:
            netloc = None if rule.netloc_pattern is None else re.compile(rule.netloc_pattern).match
            path = None if rule.path_pattern is None else re.compile(rule.path_pattern).match
            tests.append((netloc, path, rule.methods))
            pattern = rule.content_type_pattern
            content_type.append(None if pattern is None else re.compile(pattern, re.IGNORECASE).match)
        self._content_type = tuple(content_type)
        self._conditional = any(test != (None, None, None) for test in tests)
        self._segments = _path_segments(self._rules, tests)
        # Whether a path pattern sees the path without its leading slash (0.14's form).
        self._bare_form = any(not with_slash for with_slash, _, _ in self._segments)
        # Sets of rules are ints (bit i: rule i). The rules without a netloc pattern pass the
        # netloc test; the rules without a path pattern are answered once per netloc, those
        # without methods too (`_host_matches`), those with methods per request.
        self._netloc_tests = tuple(
            (1 << index, netloc) for index, (netloc, _, _) in enumerate(tests) if netloc is not None
        )
        self._any_netloc = sum(1 << index for index, (netloc, _, _) in enumerate(tests) if netloc is None)
        self._path_free = sum(
            1 << index for index, (_, path, methods) in enumerate(tests) if path is None and methods is None
        )
        self._path_free_methods: tuple[tuple[int, frozenset[str]], ...] = tuple(
            (1 << index, methods)
            for index, (_, path, methods) in enumerate(tests)
            if path is None and methods is not None
        )
        # netloc -> (the rules whose netloc test passes, those of them without path pattern nor
        # methods); bounded like _matches: clients choose the Host header, but a service sees few
        # netlocs and many paths.
        self._hosts: dict[str, tuple[int, int]] = {}
        self._plans: dict[int, _Plan] = {}
        self._all = self._plan((1 << len(self._rules)) - 1) if self._rules else None
        # (netloc, path, method) -> the plan of the matching rules (None: no rule matched). The key
        # is everything a rule reads of the request, so two requests share an entry only when every
        # rule answers them alike.
        self._matches: dict[tuple[str, str, str], _Plan | None] = {}

    def _plan(self, matched: int) -> _Plan:
        """The plan of the rules whose bits are set in ``matched``, in rule order (cached, bounded)."""
        plan = self._plans.get(matched)
        if plan is None:
            indices = [index for index in range(len(self._rules)) if matched >> index & 1]
            plan = _Plan(
                tuple(self._rules[index] for index in indices), tuple(self._content_type[index] for index in indices)
            )
            if len(self._plans) < _MAX_PLANS:
                self._plans[matched] = plan
        return plan

    def match(self, netloc: str, path: str, method: str) -> _Plan | _NonceMatch | None:
        """Select the rules matching the request (``re.match`` on netloc and path, exact method).

        ``path`` has its leading slash; a pattern of 0.14's form sees it without (`CompiledRule.path_with_slash`).
        """
        return self._answer((netloc, path, method))

    def match_scope(self, scope: Scope) -> _Plan | _NonceMatch | None:
        """`match` on the netloc, relative path and method of an ``http`` scope.

        `_answer` written out (the middleware's one engine call per request: Python calls less).
        """
        target = request_target(scope)
        matches = self._matches
        plan = matches.get(target, _MISS)
        if plan is _MISS:  # `_miss` written out too
            netloc, path, method = target
            plan = self._select_rules(netloc, path, method)
            if len(netloc) + len(path) <= _MAX_TARGET:
                if len(matches) >= _MAX_MATCHES:
                    matches.clear()
                matches[target] = plan
        if plan is None:
            return None
        if plan.needs_nonce:
            try:  # the pool's next nonce without a Python call
                return _nonce_match((plan,) + next(_NONCES.nonces))
            except StopIteration:
                return _nonce_match((plan,) + _NONCES.refill())
        return plan

    def _answer(self, target: tuple[str, str, str]) -> _Plan | _NonceMatch | None:
        """The match of ``(netloc, path, method)``: the rule set from the cache or `_select_rules`,
        with a fresh nonce when a matched rule needs one (never cached: one per request)."""
        plan = self._matches.get(target, _MISS)
        if plan is _MISS:
            plan = self._miss(target)
        if plan is None:
            return None
        if plan.needs_nonce:
            return _nonce_match((plan,) + _NONCES.next_nonce())
        return plan

    def _miss(self, target: tuple[str, str, str]) -> _Plan | None:
        """`_select_rules` for a target the cache does not hold, then its entry in the cache.

        Bounded: at most _MAX_MATCHES entries of at most _MAX_TARGET characters; the keys are
        chosen by clients (a scan of distinct paths empties the cache, never grows it).
        """
        netloc, path, method = target
        plan = self._select_rules(netloc, path, method)
        if len(netloc) + len(path) <= _MAX_TARGET:
            matches = self._matches
            if len(matches) >= _MAX_MATCHES:
                matches.clear()
            matches[target] = plan
        return plan

    def _select_rules(self, netloc: str, path: str, method: str) -> _Plan | None:
        """The plan of the rules matching the request, or None (no cache here)."""
        if not self._conditional:
            return self._all
        answer = self._hosts.get(netloc)
        hosts, matched = self._host_matches(netloc) if answer is None else answer
        for bit, allowed in self._path_free_methods:  # rules with methods but no path pattern
            if hosts & bit and method in allowed:
                matched |= bit
        bare = path[1:] if self._bare_form and path[:1] == "/" else path
        for with_slash, block, tests in self._segments:
            subject = path if with_slash else bare
            if block is None:  # one rule, tested alone: its literal before its regex
                bit, path_match, methods, literal = tests[0]
                if (
                    hosts & bit
                    and literal in subject
                    and (methods is None or method in methods)
                    and path_match(subject) is not None
                ):
                    matched |= bit
                continue
            # A block: one alternation call finds the next path pattern that matches, then its
            # rule's netloc (a bit of ``hosts``) and methods are tested (`_BLOCK`).
            suffixes, start, count = block.suffixes, 0, len(tests)
            while start < count:
                suffix = suffixes[start] or block.suffix(start)
                found = suffix[0](subject)
                if found is None:
                    break
                start = suffix[1][found.lastindex] + 1  # type: ignore[index]  # never None: a marker closed last
                bit, _, methods, _ = tests[start - 1]
                if hosts & bit and (methods is None or method in methods):
                    matched |= bit
        if not matched:
            return None
        return self._plans.get(matched) or self._plan(matched)

    def _host_matches(self, netloc: str) -> tuple[int, int]:
        """The rules whose netloc test passes for ``netloc``, and those of them without path pattern
        nor methods (which match every request to ``netloc``), as bit sets (cached, bounded)."""
        hosts = self._any_netloc
        for bit, netloc_match in self._netloc_tests:
            if netloc_match(netloc) is not None:
                hosts |= bit
        answer = (hosts, hosts & self._path_free)
        if len(netloc) <= _MAX_TARGET:
            if len(self._hosts) >= _MAX_MATCHES:
                self._hosts.clear()
            self._hosts[netloc] = answer
        return answer

    def apply(self, match: object, status: int, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """Return the response headers after the matched rules' edits (a new list)."""
        if type(match) is _Plan:
            plan, nonce_match = match, None
        elif isinstance(match, _NonceMatch):
            plan, nonce_match = match.plan, match
        elif isinstance(match, _Plan):
            plan, nonce_match = match, None
        else:
            raise TypeError(f"not a match of this engine: {match!r}")
        if plan.keep:
            return self._apply_keep(plan, status, headers, None if nonce_match is None else nonce_match.nonce)
        # The static plan holds for statuses every rule accepts (an application may send any int).
        edits = plan.static if 0 <= status <= 999 else None
        if edits is None:
            edits = plan.edit_plan(self._select(plan, status, headers))
        touched = edits.touched
        result = [header for header in headers if header[0].lower() not in touched]
        if nonce_match is None:
            result.extend(edits.appended)
            return result
        return _with_nonce(result, edits, nonce_match)

    @staticmethod
    def _select(plan: _Plan, status: int, headers: list[tuple[bytes, bytes]]) -> tuple[int, ...]:
        """Indices (in ``plan.rules``) of the matched rules that apply to this response."""
        content_type: str | None = None
        if plan.content_type:
            for name, value in headers:
                if name.lower() == _CONTENT_TYPE:
                    content_type = value.decode("latin-1")
                    break
        selected = []
        for position, (rule, matcher) in enumerate(zip(plan.rules, plan.content_type_matchers, strict=True)):
            if rule.status_low <= status <= rule.status_high and (
                matcher is None or (content_type is not None and matcher(content_type) is not None)
            ):
                selected.append(position)
        return tuple(selected)

    def _apply_keep(
        self, plan: _Plan, status: int, headers: list[tuple[bytes, bytes]], nonce: str | None
    ) -> list[tuple[bytes, bytes]]:
        """The general algorithm (some rule keeps existing headers, so the result depends on them),
        with ``cache-control: no-store`` when the nonce is carried."""
        existing = {name.lower() for name, _ in headers}
        touched: set[bytes] = set()
        appended: dict[bytes, bytes] = {}
        for position in self._select(plan, status, headers):
            rule = plan.rules[position]
            for name, value in rule.edits:
                if (
                    value is not None
                    and rule.keep_existing
                    and (name in appended or (name in existing and name not in touched))
                ):
                    continue
                touched.add(name)
                appended.pop(name, None)
                if value is not None:
                    appended[name] = value
        result = [header for header in headers if header[0].lower() not in touched]
        if nonce is None:
            result.extend(appended.items())
        else:
            value = b"'nonce-" + nonce.encode("ascii") + b"'"
            result.extend((name, text.replace(_PLACEHOLDER, value)) for name, text in appended.items())
            _no_store(result, nonce)
        return result


def _no_store(headers: list[tuple[bytes, bytes]], nonce: str) -> None:
    """Append ``cache-control: no-store`` when a header carries the nonce and none is set."""
    encoded = nonce.encode("ascii")
    carries = False
    for name, value in headers:
        if name.lower() == _CACHE_CONTROL:
            return
        if encoded in value:
            carries = True
    if carries:
        headers.append(_NO_STORE)


def _with_nonce(result: list[_Header], edits: _EditPlan, match: _NonceMatch) -> list[_Header]:
    """Append ``edits`` to the kept headers ``result`` with the nonce substituted, and
    ``cache-control: no-store`` when a header carries the nonce and none is set.

    The application's kept headers are scanned (usually a few) only when the answer can change:
    whether one carries the nonce (none of ours does) and whether one is a cache-control (only
    looked for when ours do not set one).
    """
    carries = edits.placeholder
    has_cache_control = edits.cache_control
    if not has_cache_control:
        if carries:  # only the cache-control question is open
            for name, _ in result:
                if name.lower() == _CACHE_CONTROL:
                    has_cache_control = True
                    break
        else:
            encoded = match.token
            for name, value in result:
                if name.lower() == _CACHE_CONTROL:
                    has_cache_control = True
                    break
                if value.find(encoded) >= 0:  # `in` on bytes costs twice as much (it tries an int first)
                    carries = True
    base = len(result)
    result.extend(edits.appended_no_store if carries and not has_cache_control else edits.appended)
    token = match.source
    for position, name, parts in edits.substitutions:  # none when no value holds the placeholder
        result[base + position] = (name, token.join(parts))
    return result
