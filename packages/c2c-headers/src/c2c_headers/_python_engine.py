"""The pure-Python header engine (always available); semantics in `c2c_headers._engine`'s docstring.

Speed comes from doing per request only what depends on the request: the rendered values, the
order of the edits and the set of names each rule set touches are folded once per distinct set of
applicable rules ("plan", cached), so applying the default rules is one list comprehension over the
response headers plus one ``extend``. Which rules match a request is kept per ``(netloc, path,
method)`` in a bounded cache (`_MAX_MATCHES`), so a repeated request costs one dict lookup; a miss
runs the path patterns by blocks of marker alternations (see `_BLOCK`).
"""

from __future__ import annotations

import re
from binascii import b2a_base64
from collections.abc import Callable, Sequence
from os import urandom
from typing import Final

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
# (rule index, has a netloc pattern, path matcher, methods); netloc patterns are answered per netloc
# (`PythonEngine._hosts`), so a test reads a set.
_Test = tuple[int, bool, "_Matcher | None", "frozenset[str] | None"]
# An alternation of a block's path patterns from some position on, and the position (in the block)
# of the pattern each of its groups closes (-1 for the patterns' own groups).
_Suffix = tuple["_Matcher", tuple[int, ...]]
# A block of path rules (its alternations, its tests), or one rule tested alone (None, (test,)).
_Segment = tuple["_Block | None", tuple[_Test, ...]]
# Consecutive segments whose path patterns see one form of the path: (with its leading slash?, segments).
_Run = tuple[bool, tuple[_Segment, ...]]
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


def _runs(
    rules: tuple[CompiledRule, ...], tests: list[tuple[_Matcher | None, _Matcher | None, frozenset[str] | None]]
) -> tuple[_Run, ...]:
    """Group the path rules of one path form into prefiltered blocks, and the blocks into runs of one
    form (the path form is chosen once per run, not per block). The rules are visited grouped by
    kind (without path pattern, path patterns with the slash, without it, patterns tested alone),
    each group in rule order: a request's matched indices are sorted afterwards."""
    return _by_form(_segments(rules, tests, _matching_order(rules)))


def _matching_order(rules: tuple[CompiledRule, ...]) -> list[int]:
    """The rule indices grouped so that the path patterns of one form form as few blocks as possible."""

    def kind(index: int) -> int:
        pattern = rules[index].path_pattern
        if pattern is None:
            return 0
        if _GROUP_REFERENCE.search(pattern):
            return 3
        return 1 if rules[index].path_with_slash else 2

    return sorted(range(len(rules)), key=kind)


def _segments(
    rules: tuple[CompiledRule, ...],
    tests: list[tuple[_Matcher | None, _Matcher | None, frozenset[str] | None]],
    order: Sequence[int],
) -> list[tuple[bool | None, _Segment]]:
    """The rules in ``order`` as ``(path form, segment)``: consecutive path patterns of one form in
    blocks of up to `_BLOCK`; the form is None for a rule without path pattern (it fits any run)."""
    segments: list[tuple[bool | None, _Segment]] = []
    block: list[_Test] = []
    patterns: list[str] = []
    block_form = True
    for index in order:
        rule = rules[index]
        netloc, path, methods = tests[index]
        pattern = rule.path_pattern
        test = (index, netloc is not None, path, methods)
        if pattern is None or _GROUP_REFERENCE.search(pattern):
            segments += _block(block_form, block, patterns)
            block, patterns = [], []
            segments.append((None if pattern is None else rule.path_with_slash, (None, (test,))))
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


def _block(form: bool, tests: list[_Test], patterns: list[str]) -> list[tuple[bool | None, _Segment]]:
    """The segments of one block: one with its suffix alternations when it holds two tests or more
    and the patterns combine, else one per test (none for an empty block)."""
    if len(tests) >= 2:
        try:
            block = _Block(patterns)
        except re.error:  # e.g. inline global flags, duplicate group names: test them alone
            pass
        else:
            return [(form, (block, tuple(tests)))]
    return [(form, (None, (test,))) for test in tests]


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


def _by_form(segments: list[tuple[bool | None, _Segment]]) -> tuple[_Run, ...]:
    """Consecutive segments of one path form (or of none) as one run."""
    runs: list[_Run] = []
    run: list[_Segment] = []
    run_form: bool | None = None
    for form, segment in segments:
        if form is not None and run_form is not None and form != run_form:
            runs.append((run_form, tuple(run)))
            run = []
            run_form = None
        if run_form is None:
            run_form = form
        run.append(segment)
    if run:
        runs.append((True if run_form is None else run_form, tuple(run)))
    return tuple(runs)


def _scan_block(
    block: _Block, tests: tuple[_Test, ...], subject: str, hosts: frozenset[int], method: str, matched: list[int]
) -> None:
    """Append to ``matched`` the indices of the block's rules that match, in order: one alternation
    call finds the next path pattern that matches, then its rule's netloc and methods are tested."""
    suffixes = block.suffixes
    start = 0
    count = len(tests)
    while start < count:
        suffix = suffixes[start] or block.suffix(start)
        found = suffix[0](subject)
        if found is None:
            return
        position = suffix[1][found.lastindex]  # type: ignore[index]  # never None: a marker closed last
        index, by_host, _, methods = tests[position]
        if (not by_host or index in hosts) and (methods is None or method in methods):
            matched.append(index)
        start = position + 1


def new_nonce() -> str:
    """128 bits from the operating system's CSPRNG, standard base64 with padding (24 characters).

    ``os.urandom`` is what ``secrets.token_bytes`` calls (one call less); never buffered, so that a
    forked worker can never replay its parent's nonces.
    """
    return b2a_base64(urandom(16), newline=False).decode("ascii")


class _EditPlan:
    """The folded edits of one sequence of applicable rules without ``keep_existing`` edits."""

    __slots__ = ("appended", "cache_control", "placeholder", "substitutions", "touched")

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


class _NonceMatch:
    """A `RequestMatch` carrying a fresh nonce (`new_nonce`), as str and as the bytes of the headers."""

    __slots__ = ("nonce", "plan", "token")

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.token = b2a_base64(urandom(16), newline=False)  # as in `new_nonce`, kept as bytes
        self.nonce: str | None = self.token.decode("ascii")


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
        self._runs = _runs(self._rules, tests)
        # netloc -> the indices of the rules whose netloc pattern matches it (bounded like _matches:
        # clients choose the Host header, but a service sees few netlocs and many paths).
        self._netloc_tests = tuple((index, netloc) for index, (netloc, _, _) in enumerate(tests) if netloc is not None)
        self._hosts: dict[str, frozenset[int]] = {}
        self._plans: dict[tuple[int, ...], _Plan] = {}
        self._all = self._plan(tuple(range(len(self._rules)))) if self._rules else None
        # (netloc, path, method) -> the plan of the matching rules (None: no rule matched). The key
        # is everything a rule reads of the request, so two requests share an entry only when every
        # rule answers them alike.
        self._matches: dict[tuple[str, str, str], _Plan | None] = {}

    def _plan(self, indices: tuple[int, ...]) -> _Plan:
        plan = self._plans.get(indices)
        if plan is None:
            plan = _Plan(
                tuple(self._rules[index] for index in indices), tuple(self._content_type[index] for index in indices)
            )
            if len(self._plans) < _MAX_PLANS:
                self._plans[indices] = plan
        return plan

    def match(self, netloc: str, path: str, method: str) -> _Plan | _NonceMatch | None:
        """Select the rules matching the request (``re.match`` on netloc and path, exact method).

        ``path`` has its leading slash; a pattern of 0.14's form sees it without (`CompiledRule.path_with_slash`).
        """
        return self._answer((netloc, path, method))

    def match_scope(self, scope: Scope) -> _Plan | _NonceMatch | None:
        """`match` on the netloc, relative path and method of an ``http`` scope."""
        return self._answer(request_target(scope))

    def _answer(self, target: tuple[str, str, str]) -> _Plan | _NonceMatch | None:
        """The match of ``(netloc, path, method)``: the rule set from the cache or `_select_rules`,
        with a fresh nonce when a matched rule needs one (never cached: one per request)."""
        plan = self._matches.get(target, _MISS)
        if plan is _MISS:
            plan = self._select_rules(*target)
            # Bounded: at most _MAX_MATCHES entries of at most _MAX_TARGET characters; the keys are
            # chosen by clients (a scan of distinct paths empties the cache, never grows it).
            if len(target[0]) + len(target[1]) <= _MAX_TARGET:
                if len(self._matches) >= _MAX_MATCHES:
                    self._matches.clear()
                self._matches[target] = plan
        if plan is None:
            return None
        if plan.needs_nonce:
            return _NonceMatch(plan)
        return plan

    def _select_rules(self, netloc: str, path: str, method: str) -> _Plan | None:
        """The plan of the rules matching the request, or None (no cache here)."""
        if not self._conditional:
            return self._all
        hosts = self._hosts.get(netloc)
        if hosts is None:
            hosts = self._host_matches(netloc)
        matched: list[int] = []
        for with_slash, segments in self._runs:
            subject = path if with_slash or path[:1] != "/" else path[1:]
            for block, tests in segments:
                if block is None:  # one rule, tested alone
                    index, by_host, path_match, methods = tests[0]
                    if (
                        (not by_host or index in hosts)
                        and (path_match is None or path_match(subject) is not None)
                        and (methods is None or method in methods)
                    ):
                        matched.append(index)
                    continue
                _scan_block(block, tests, subject, hosts, method, matched)
        if not matched:
            return None
        matched.sort()  # the runs visit the rules grouped by kind (`_matching_order`)
        return self._plan(tuple(matched))

    def _host_matches(self, netloc: str) -> frozenset[int]:
        """The indices of the rules whose netloc pattern matches ``netloc`` (cached, bounded)."""
        hosts = frozenset(index for index, netloc_match in self._netloc_tests if netloc_match(netloc) is not None)
        if len(netloc) <= _MAX_TARGET:
            if len(self._hosts) >= _MAX_MATCHES:
                self._hosts.clear()
            self._hosts[netloc] = hosts
        return hosts

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
    result.extend(edits.appended)
    token = b"'nonce-" + match.token + b"'"
    for position, name, parts in edits.substitutions:  # none when no value holds the placeholder
        result[base + position] = (name, token.join(parts))
    if carries and not has_cache_control:
        result.append(_NO_STORE)
    return result
