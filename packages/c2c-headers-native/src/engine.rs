//! The rule engine without Python: request matching over regex sets, and the response edits.
//!
//! Patterns arrive already translated to the Rust dialect (see `python/c2c_headers_native/_translate.py`)
//! and anchored with `\A`; `check::check_translated` verifies they stay inside the translator's
//! allowlist before anything is compiled.

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::{Anchored, Input, MatchKind};

/// Room for large rule sets: the defaults (10 MiB program, 2 MiB lazy DFA cache) are sized for one
/// regex, a set of thousands of patterns needs more to keep the lazy DFA from thrashing.
const SIZE_LIMIT: usize = 256 << 20;
const DFA_SIZE_LIMIT: usize = 64 << 20;
/// The lazy DFA of one field, per concurrent search (it grows up to this, then clears itself).
const DFA_CACHE_CAPACITY: usize = 16 << 20;

/// Where a pattern came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Netloc,
    Path,
    ContentType,
}

impl Field {
    pub fn attribute(self) -> &'static str {
        match self {
            Field::Netloc => "netloc_pattern",
            Field::Path => "path_pattern",
            Field::ContentType => "content_type_pattern",
        }
    }
}

/// A rule's request-side conditions, with patterns already in the Rust dialect.
#[derive(Debug, Clone, Default)]
pub struct RuleSpec {
    pub netloc: Option<String>,
    pub path: Option<String>,
    /// The path pattern sees the path with its leading slash (`/api/x`); else without it (`api/x`,
    /// c2casgiutils 0.14's form). See `c2c_headers_native.Rule.path_with_slash`.
    pub path_with_slash: bool,
    pub methods: Option<Vec<String>>,
    pub content_type: Option<String>,
    pub nonce: bool,
}

/// A pattern the `regex` crate refused (size limits, nesting): which rule and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    pub rule: usize,
    pub field: Field,
    pub reason: String,
}

/// One lazy DFA over all the patterns of a field, reporting every pattern that matches at the start.
///
/// `RegexSet::matches` answers the same question but costs time in proportion to the number of
/// patterns (an overlapping search through the meta engine, then a scan of one flag per pattern);
/// walking the lazy DFA ourselves and reading the pattern ids of the match states it enters costs
/// time in proportion to the haystack and the patterns that match.
#[derive(Debug)]
struct Walker {
    dfa: DFA,
}

impl Walker {
    fn new(patterns: &[String], cache_capacity: usize) -> Option<Walker> {
        // Like the regex crate's own engine: when the lazy DFA keeps rebuilding states (inputs
        // crafted to defeat it), give up and let the regex set (PikeVM) answer instead.
        let config = DFA::config()
            .match_kind(MatchKind::All)
            .cache_capacity(cache_capacity)
            .minimum_cache_clear_count(Some(3))
            .minimum_bytes_per_state(Some(10));
        let dfa = DFA::builder()
            .configure(config)
            .thompson(thompson::Config::new().nfa_size_limit(Some(SIZE_LIMIT)))
            .build_many(patterns)
            .ok()?;
        Some(Walker { dfa })
    }

    /// The ids (ascending) of the patterns matching at the start of `haystack`, or None when the
    /// lazy DFA gives up (the caller then asks the regex set). With a fresh cache: for tests.
    #[cfg(test)]
    fn search(&self, haystack: &str) -> Option<Vec<u32>> {
        let mut found = Vec::new();
        self.search_into(&mut None, haystack, 0, &mut found)
            .then_some(found)
    }

    /// Append to `found` the ids plus `offset` (ascending) of the patterns matching at the start of
    /// `haystack`; false when the lazy DFA gives up (the caller then asks the regex set), `found`
    /// then as it was. `cache` is created on first use, and dropped when it gives up (the next
    /// search starts a fresh one). `found` must hold only ids below `offset`.
    fn search_into(
        &self,
        cache: &mut Option<Box<Cache>>,
        haystack: &str,
        offset: u32,
        found: &mut Vec<u32>,
    ) -> bool {
        let walker_cache = cache.get_or_insert_with(|| Box::new(self.dfa.create_cache()));
        let start = found.len();
        if self
            .walk(walker_cache, haystack.as_bytes(), offset, found)
            .is_none()
        {
            *cache = None;
            found.truncate(start);
            return false;
        }
        found[start..].sort_unstable();
        found.dedup();
        true
    }

    fn walk(
        &self,
        cache: &mut Cache,
        haystack: &[u8],
        offset: u32,
        found: &mut Vec<u32>,
    ) -> Option<()> {
        let input = Input::new(haystack).anchored(Anchored::Yes);
        let mut state = self.dfa.start_state_forward(cache, &input).ok()?;
        let mut collect = |cache: &Cache, state| {
            for index in 0..self.dfa.match_len(cache, state) {
                found.push(offset + self.dfa.match_pattern(cache, state, index).as_u32());
            }
        };
        let mut dead = state.is_dead();
        // Matches are reported one byte late: the state entered after a match's last byte (or the
        // end-of-input transition) is a match state listing the patterns that matched.
        for &byte in haystack {
            if dead {
                break;
            }
            state = self.dfa.next_state(cache, state, byte).ok()?;
            if state.is_tagged() {
                if state.is_match() {
                    collect(cache, state);
                } else if state.is_dead() {
                    dead = true;
                } else if state.is_quit() {
                    return None;
                }
            }
        }
        if !dead {
            state = self.dfa.next_eoi_state(cache, state).ok()?;
            if state.is_match() {
                collect(cache, state);
            }
        }
        Some(())
    }
}

/// The two forms of the haystack a pattern sees: the field's text as is, or (path patterns of
/// c2casgiutils 0.14's form) the path without its leading slash.
const FORMS: usize = 2;
const AS_IS: usize = 0;
const WITHOUT_SLASH: usize = 1;

/// The patterns of one haystack form, matched in one pass.
#[derive(Debug)]
struct Group {
    walker: Option<Walker>,
    set: RegexSet,
    /// The field-wide id of the group's first pattern (the groups number their patterns in turn).
    offset: u32,
}

impl Group {
    /// Append to `found` the field-wide ids (ascending) of the group's patterns matching `haystack`.
    fn matches_into(&self, cache: &mut Option<Box<Cache>>, haystack: &str, found: &mut Vec<u32>) {
        if let Some(walker) = &self.walker
            && walker.search_into(cache, haystack, self.offset, found)
        {
            return;
        }
        self.set_matches_into(haystack, found);
    }

    /// The regex set's answer, when the lazy DFA gave up. Out of line: the set's thread-local pool
    /// lookup would otherwise be hoisted into every search (a `__tls_get_addr` call per field).
    #[cold]
    #[inline(never)]
    fn set_matches_into(&self, haystack: &str, found: &mut Vec<u32>) {
        found.extend(
            self.set
                .matches(haystack)
                .iter()
                .map(|index| self.offset + index as u32),
        );
    }
}

/// Deduplicated patterns of one field, matched in one pass per haystack form (one pass in all when
/// every pattern sees the same form).
#[derive(Debug)]
struct PatternIndex {
    /// Per form (`AS_IS`, `WITHOUT_SLASH`), its patterns; None when it has none.
    groups: [Option<Group>; FORMS],
    /// For each unique pattern (field-wide id), the rules (ascending) that use it.
    rules_by_pattern: Vec<Vec<u32>>,
    /// Rules without a pattern for this field: they always pass it.
    unconditional: Vec<u32>,
    /// For each rule, its pattern's field-wide id.
    pattern_of_rule: Vec<Option<u32>>,
}

fn unique_index(patterns: &mut Vec<String>, pattern: &str) -> u32 {
    if let Some(index) = patterns.iter().position(|known| known == pattern) {
        return index as u32;
    }
    patterns.push(pattern.to_owned());
    (patterns.len() - 1) as u32
}

fn compile_one(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map_err(|error| error.to_string())
}

impl Group {
    /// Compile the patterns of one form; `first_user[i]` is the first rule using `patterns[i]`.
    fn new(
        patterns: &[String],
        first_user: &[usize],
        offset: u32,
        field: Field,
        cache_capacity: usize,
    ) -> Result<Self, BuildError> {
        let set = RegexSetBuilder::new(patterns)
            .size_limit(SIZE_LIMIT)
            .dfa_size_limit(DFA_SIZE_LIMIT)
            .build();
        let set = match set {
            Ok(set) => set,
            Err(set_error) => {
                // Name the culprit: the first pattern that fails alone, else the set as a whole.
                for (index, pattern) in patterns.iter().enumerate() {
                    if let Err(reason) = compile_one(pattern) {
                        return Err(BuildError {
                            rule: first_user[index],
                            field,
                            reason,
                        });
                    }
                }
                return Err(BuildError {
                    rule: first_user.first().copied().unwrap_or(0),
                    field,
                    reason: set_error.to_string(),
                });
            }
        };
        Ok(Group {
            walker: Walker::new(patterns, cache_capacity),
            set,
            offset,
        })
    }
}

impl PatternIndex {
    fn new(specs: &[RuleSpec], field: Field, cache_capacity: usize) -> Result<Self, BuildError> {
        let mut patterns: [Vec<String>; FORMS] = Default::default();
        let mut first_user: [Vec<usize>; FORMS] = Default::default();
        // Per rule, (form, index among the patterns of that form).
        let mut local_of_rule: Vec<Option<(usize, u32)>> = Vec::with_capacity(specs.len());
        let mut unconditional = Vec::new();
        // Deduplicate through a map (keyed by form too: `\/a` and `/a` translate alike but see
        // different forms): a linear search per pattern would be quadratic in thousands of rules.
        let mut seen = std::collections::HashMap::<(usize, &str), u32>::new();
        for (rule, spec) in specs.iter().enumerate() {
            let (pattern, form) = match field {
                Field::Netloc => (spec.netloc.as_deref(), AS_IS),
                Field::Path if spec.path_with_slash => (spec.path.as_deref(), AS_IS),
                Field::Path => (spec.path.as_deref(), WITHOUT_SLASH),
                Field::ContentType => (spec.content_type.as_deref(), AS_IS),
            };
            match pattern {
                None => {
                    unconditional.push(rule as u32);
                    local_of_rule.push(None);
                }
                Some(pattern) => {
                    let index = *seen.entry((form, pattern)).or_insert_with(|| {
                        first_user[form].push(rule);
                        patterns[form].push(pattern.to_owned());
                        (patterns[form].len() - 1) as u32
                    });
                    local_of_rule.push(Some((form, index)));
                }
            }
        }
        let mut offsets = [0u32; FORMS];
        for form in 1..FORMS {
            offsets[form] = offsets[form - 1] + patterns[form - 1].len() as u32;
        }
        let mut groups: [Option<Group>; FORMS] = Default::default();
        for form in 0..FORMS {
            if !patterns[form].is_empty() {
                groups[form] = Some(Group::new(
                    &patterns[form],
                    &first_user[form],
                    offsets[form],
                    field,
                    cache_capacity,
                )?);
            }
        }
        let pattern_of_rule: Vec<Option<u32>> = local_of_rule
            .iter()
            .map(|local| local.map(|(form, index)| offsets[form] + index))
            .collect();
        let total = patterns.iter().map(Vec::len).sum();
        let mut rules_by_pattern = vec![Vec::new(); total];
        for (rule, index) in pattern_of_rule.iter().enumerate() {
            if let Some(index) = index {
                rules_by_pattern[*index as usize].push(rule as u32);
            }
        }
        Ok(PatternIndex {
            groups,
            rules_by_pattern,
            unconditional,
            pattern_of_rule,
        })
    }

    /// The ids (ascending) of the patterns matching `haystack`, in either form (a fresh cache: for
    /// tests).
    #[cfg(test)]
    fn matches(&self, haystack: &str) -> Vec<u32> {
        let mut found = Vec::new();
        self.matches_into(&mut Default::default(), [haystack; FORMS], &mut found);
        found
    }

    /// Put the ids (ascending) of the patterns matching in `found`: each group's patterns are
    /// matched against the haystack of its form (`haystacks[AS_IS]`, `haystacks[WITHOUT_SLASH]`).
    fn matches_into(
        &self,
        caches: &mut [Option<Box<Cache>>; FORMS],
        haystacks: [&str; FORMS],
        found: &mut Vec<u32>,
    ) {
        found.clear();
        // The groups number their patterns in turn: appending group after group keeps `found`
        // ascending. Unrolled: at most two groups, usually one.
        if let Some(group) = &self.groups[AS_IS] {
            group.matches_into(&mut caches[AS_IS], haystacks[AS_IS], found);
        }
        if let Some(group) = &self.groups[WITHOUT_SLASH] {
            group.matches_into(&mut caches[WITHOUT_SLASH], haystacks[WITHOUT_SLASH], found);
        }
    }

    /// How many rules pass this field for the given matched patterns.
    fn candidate_count(&self, matched: &[u32]) -> usize {
        self.unconditional.len()
            + matched
                .iter()
                .map(|&index| self.rules_by_pattern[index as usize].len())
                .sum::<usize>()
    }

    fn candidates_into(&self, matched: &[u32], rules: &mut Vec<u32>) {
        rules.clear();
        rules.extend_from_slice(&self.unconditional);
        for &index in matched {
            rules.extend_from_slice(&self.rules_by_pattern[index as usize]);
        }
    }

    fn passes(&self, rule: u32, matched: &[u32]) -> bool {
        match self.pattern_of_rule[rule as usize] {
            None => true,
            Some(index) => matched.binary_search(&index).is_ok(),
        }
    }
}

/// The reusable state of request matching: the lazy DFA caches of both fields and the buffers.
#[derive(Debug, Default)]
pub struct Scratch {
    netloc_caches: [Option<Box<Cache>>; FORMS],
    path_caches: [Option<Box<Cache>>; FORMS],
    netlocs: Vec<u32>,
    paths: Vec<u32>,
    candidates: Vec<u32>,
    /// The result of `Matcher::match_into`: the matched rules, ascending.
    pub selected: Vec<u32>,
}

/// The compiled request side of a rule set.
#[derive(Debug)]
pub struct Matcher {
    netloc: PatternIndex,
    path: PatternIndex,
    methods: Vec<Option<Vec<String>>>,
    nonce: Vec<bool>,
    /// Unique content-type patterns (case-insensitivity is already in the translation).
    content_types: Vec<Regex>,
    content_type_of_rule: Vec<Option<u32>>,
}

impl Matcher {
    /// Compile every rule's patterns (each field's unique patterns in one lazy DFA).
    ///
    /// # Errors
    ///
    /// The first pattern, in rule and field order, that does not compile in Rust (size limits).
    pub fn new(specs: &[RuleSpec]) -> Result<Self, BuildError> {
        let netloc = PatternIndex::new(specs, Field::Netloc, DFA_CACHE_CAPACITY)?;
        let path = PatternIndex::new(specs, Field::Path, DFA_CACHE_CAPACITY)?;
        let mut unique: Vec<String> = Vec::new();
        let mut content_types = Vec::new();
        let mut content_type_of_rule = Vec::with_capacity(specs.len());
        for (rule, spec) in specs.iter().enumerate() {
            content_type_of_rule.push(match &spec.content_type {
                None => None,
                Some(pattern) => {
                    let before = unique.len();
                    let index = unique_index(&mut unique, pattern);
                    if unique.len() > before {
                        content_types.push(compile_one(pattern).map_err(|reason| BuildError {
                            rule,
                            field: Field::ContentType,
                            reason,
                        })?);
                    }
                    Some(index)
                }
            });
        }
        Ok(Matcher {
            netloc,
            path,
            methods: specs.iter().map(|spec| spec.methods.clone()).collect(),
            nonce: specs.iter().map(|spec| spec.nonce).collect(),
            content_types,
            content_type_of_rule,
        })
    }

    pub fn len(&self) -> usize {
        self.nonce.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nonce.is_empty()
    }

    /// The rules (ascending) whose netloc pattern, path pattern and methods accept the request.
    /// `path` is the path relative to the root path, with its leading slash: a path pattern sees it
    /// as is or without that slash (`RuleSpec::path_with_slash`).
    pub fn match_request(&self, netloc: &str, path: &str, method: &str) -> Vec<u32> {
        let mut scratch = Scratch::default();
        self.match_into(&mut scratch, netloc, path, method);
        scratch.selected
    }

    /// `match_request` into `scratch.selected`, with the caches and buffers of `scratch` (no
    /// allocation once they have grown).
    pub fn match_into(&self, scratch: &mut Scratch, netloc: &str, path: &str, method: &str) {
        let Scratch {
            netloc_caches,
            path_caches,
            netlocs,
            paths,
            candidates,
            selected,
        } = scratch;
        self.netloc
            .matches_into(netloc_caches, [netloc, netloc], netlocs);
        // Path patterns of c2casgiutils 0.14's form see the path without its leading slash.
        let without_slash = path.strip_prefix('/').unwrap_or(path);
        self.path
            .matches_into(path_caches, [path, without_slash], paths);
        // Enumerate the more selective field, filter by the other: the work follows the number of
        // candidate rules, not the size of the rule set.
        let (other, other_matched) =
            if self.path.candidate_count(paths) <= self.netloc.candidate_count(netlocs) {
                self.path.candidates_into(paths, candidates);
                (&self.netloc, &*netlocs)
            } else {
                self.netloc.candidates_into(netlocs, candidates);
                (&self.path, &*paths)
            };
        selected.clear();
        selected.extend(
            candidates
                .iter()
                .copied()
                .filter(|&rule| other.passes(rule, other_matched))
                .filter(|&rule| match &self.methods[rule as usize] {
                    None => true,
                    Some(methods) => methods.iter().any(|accepted| accepted == method),
                }),
        );
        selected.sort_unstable();
    }

    /// Whether any of these rules needs a nonce.
    pub fn needs_nonce(&self, rules: &[u32]) -> bool {
        rules.iter().any(|&rule| self.nonce[rule as usize])
    }

    pub fn content_type_pattern(&self, rule: u32) -> Option<u32> {
        self.content_type_of_rule[rule as usize]
    }

    pub fn content_type_matches(&self, pattern: u32, content_type: &str) -> bool {
        self.content_types[pattern as usize].is_match(content_type)
    }
}

/// One edit of a rule: header name (lower-case) and value (None removes).
#[derive(Debug, Clone)]
pub struct Edit {
    pub name: Vec<u8>,
    /// The value split on the nonce placeholder: one part means no placeholder.
    pub value: Option<Vec<Vec<u8>>>,
}

/// A rule's response side.
#[derive(Debug, Clone)]
pub struct RuleEdits {
    pub status_low: i64,
    pub status_high: i64,
    pub edits: Vec<Edit>,
    pub keep_existing: bool,
}

/// A header of the result: one of the response's own, or one a rule emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    /// Index into the response's header list.
    Original(usize),
    /// (rule, edit) whose value is emitted.
    Emitted(u32, u32),
}

/// The result of `apply`: the header list, and whether to append `cache-control: no-store`.
#[derive(Debug, PartialEq, Eq)]
pub struct Applied {
    pub headers: Vec<Out>,
    pub add_no_store: bool,
}

pub const PLACEHOLDER: &[u8] = b"'nonce'";

/// Split a value on every non-overlapping occurrence of the placeholder, left to right (as Python's
/// `bytes.replace` finds them).
pub fn split_placeholder(value: &[u8]) -> Vec<Vec<u8>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at + PLACEHOLDER.len() <= value.len() {
        if &value[at..at + PLACEHOLDER.len()] == PLACEHOLDER {
            parts.push(value[start..at].to_vec());
            at += PLACEHOLDER.len();
            start = at;
        } else {
            at += 1;
        }
    }
    parts.push(value[start..].to_vec());
    parts
}

/// Join the parts of a value with `'nonce-<nonce>'`.
pub fn render(parts: &[Vec<u8>], nonce: &str) -> Vec<u8> {
    let mut value = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            value.extend_from_slice(b"'nonce-");
            value.extend_from_slice(nonce.as_bytes());
            value.push(b'\'');
        }
        value.extend_from_slice(part);
    }
    value
}

/// Decode latin-1 bytes into a string (every byte is the code point of the same number).
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&byte| byte as char).collect()
}

/// Whether Python's `header_name.lower() == edit_name` holds (ASCII lower-casing, exact bytes).
pub fn lower_equals(header_name: &[u8], edit_name: &[u8]) -> bool {
    header_name.len() == edit_name.len()
        && header_name
            .iter()
            .zip(edit_name)
            .all(|(header, edit)| header.to_ascii_lowercase() == *edit)
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// Apply the matched rules to a response (see the engine contract in `c2c_headers/_engine.py`).
///
/// `names` and `values` are the response's headers in order, `content_type` its first
/// `content-type` value decoded as latin-1, `nonce` the match's nonce. Header names of the response
/// are compared lower-cased with the rules' names (which the compiler lower-cases), rules' names
/// with each other exactly, as the Python engine does.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    matcher: &Matcher,
    rules: &[RuleEdits],
    matched_rules: &[u32],
    status: i64,
    names: &[&[u8]],
    values: &[&[u8]],
    content_type: Option<&str>,
    nonce: Option<&str>,
) -> Applied {
    let mut out: Vec<Out> = (0..names.len()).map(Out::Original).collect();
    let edit_of = |rule: u32, edit: u32| -> &Edit { &rules[rule as usize].edits[edit as usize] };
    let is_named = |item: &Out, name: &[u8]| -> bool {
        match *item {
            Out::Original(index) => lower_equals(names[index], name),
            Out::Emitted(rule, edit) => edit_of(rule, edit).name == name,
        }
    };
    for rule_index in applicable(matcher, rules, matched_rules, status, content_type) {
        let rule = &rules[rule_index as usize];
        for (edit_index, edit) in rule.edits.iter().enumerate() {
            if edit.value.is_some()
                && rule.keep_existing
                && out.iter().any(|item| is_named(item, &edit.name))
            {
                continue;
            }
            out.retain(|item| !is_named(item, &edit.name));
            if edit.value.is_some() {
                out.push(Out::Emitted(rule_index, edit_index as u32));
            }
        }
    }
    // A cached nonce is a reused nonce: forbid storing a response some header of which carries it.
    let add_no_store = nonce.is_some_and(|nonce| {
        let carries = |item: &Out| match *item {
            Out::Original(index) => contains(values[index], nonce.as_bytes()),
            Out::Emitted(rule, edit) => match &edit_of(rule, edit).value {
                Some(parts) => parts.len() > 1 || contains(&parts[0], nonce.as_bytes()),
                None => false,
            },
        };
        let cache_control = |item: &Out| match *item {
            Out::Original(index) => names[index].eq_ignore_ascii_case(b"cache-control"),
            Out::Emitted(rule, edit) => edit_of(rule, edit)
                .name
                .eq_ignore_ascii_case(b"cache-control"),
        };
        out.iter().any(carries) && !out.iter().any(cache_control)
    });
    Applied {
        headers: out,
        add_no_store,
    }
}

/// The matched rules (in order) that apply to a response: status in the rule's range, and the
/// content type (first `content-type` value, latin-1) accepted by its pattern when it has one.
pub fn applicable(
    matcher: &Matcher,
    rules: &[RuleEdits],
    matched_rules: &[u32],
    status: i64,
    content_type: Option<&str>,
) -> Vec<u32> {
    // Several rules often share a content-type pattern: evaluate each at most once per response.
    let mut verdicts: Vec<Option<bool>> = vec![None; matcher.content_types.len()];
    matched_rules
        .iter()
        .copied()
        .filter(|&rule_index| {
            let rule = &rules[rule_index as usize];
            if status < rule.status_low || status > rule.status_high {
                return false;
            }
            match matcher.content_type_pattern(rule_index) {
                None => true,
                Some(pattern) => content_type.is_some_and(|value| {
                    *verdicts[pattern as usize]
                        .get_or_insert_with(|| matcher.content_type_matches(pattern, value))
                }),
            }
        })
        .collect()
}

/// The edits of a sequence of applicable rules, folded once for every response they apply to.
///
/// Valid when no rule of the sequence keeps existing headers: the result of `apply` then does not
/// depend on which headers the response has. It is the response's headers whose lower-cased name
/// is not in `touched`, in their order, followed by the `appended` emissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    /// Every header name an edit of the sequence sets or removes (lower-case, unique).
    pub touched: Vec<Vec<u8>>,
    /// The emitted `(rule, edit)` pairs, in the order they end up in.
    pub appended: Vec<(u32, u32)>,
}

/// Fold the edits of `selected` (rule indices, in application order); see `Folded`.
pub fn fold(rules: &[RuleEdits], selected: &[u32]) -> Folded {
    let mut touched: Vec<Vec<u8>> = Vec::new();
    let mut appended: Vec<(u32, u32)> = Vec::new();
    for &rule_index in selected {
        for (edit_index, edit) in rules[rule_index as usize].edits.iter().enumerate() {
            if !touched.contains(&edit.name) {
                touched.push(edit.name.clone());
            }
            // Setting a header again moves it to the end; removing it drops the earlier emission.
            appended.retain(|&(rule, other)| {
                rules[rule as usize].edits[other as usize].name != edit.name
            });
            if edit.value.is_some() {
                appended.push((rule_index, edit_index as u32));
            }
        }
    }
    Folded { touched, appended }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule whose path pattern sees the path with its leading slash.
    fn spec(netloc: Option<&str>, path: Option<&str>, methods: Option<&[&str]>) -> RuleSpec {
        RuleSpec {
            netloc: netloc.map(str::to_owned),
            path: path.map(str::to_owned),
            path_with_slash: true,
            methods: methods.map(|methods| methods.iter().map(ToString::to_string).collect()),
            content_type: None,
            nonce: false,
        }
    }

    fn edits(pairs: &[(&str, Option<&str>)], keep_existing: bool) -> RuleEdits {
        RuleEdits {
            status_low: 0,
            status_high: 999,
            edits: pairs
                .iter()
                .map(|(name, value)| Edit {
                    name: name.as_bytes().to_vec(),
                    value: value.map(|value| split_placeholder(value.as_bytes())),
                })
                .collect(),
            keep_existing,
        }
    }

    /// The result as (name, value) strings, with the nonce as given.
    fn render_result(
        applied: &Applied,
        rules: &[RuleEdits],
        headers: &[(&str, &str)],
        nonce: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = applied
            .headers
            .iter()
            .map(|item| match *item {
                Out::Original(index) => (headers[index].0.to_owned(), headers[index].1.to_owned()),
                Out::Emitted(rule, edit) => {
                    let edit = &rules[rule as usize].edits[edit as usize];
                    let parts = edit.value.as_ref().unwrap();
                    let value = match nonce {
                        Some(nonce) => render(parts, nonce),
                        None => parts.join(PLACEHOLDER),
                    };
                    (
                        String::from_utf8(edit.name.clone()).unwrap(),
                        String::from_utf8(value).unwrap(),
                    )
                }
            })
            .collect();
        if applied.add_no_store {
            out.push(("cache-control".to_owned(), "no-store".to_owned()));
        }
        out
    }

    fn run(
        specs: &[RuleSpec],
        rules: &[RuleEdits],
        status: i64,
        headers: &[(&str, &str)],
        nonce: Option<&str>,
    ) -> Vec<(String, String)> {
        let matcher = Matcher::new(specs).unwrap();
        let every_rule: Vec<u32> = (0..specs.len() as u32).collect();
        let names: Vec<&[u8]> = headers.iter().map(|(name, _)| name.as_bytes()).collect();
        let values: Vec<&[u8]> = headers.iter().map(|(_, value)| value.as_bytes()).collect();
        let content_type = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            .map(|(_, value)| *value);
        let applied = apply(
            &matcher,
            rules,
            &every_rule,
            status,
            &names,
            &values,
            content_type,
            nonce,
        );
        render_result(&applied, rules, headers, nonce)
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn matching_is_anchored_and_combines_fields() {
        let specs = [
            spec(Some(r"\A(?:example\x{2E}com)"), None, None),
            spec(None, Some(r"\A(?:\x{2F}api)"), Some(&["GET", "HEAD"])),
            spec(
                Some(r"\A(?:example\x{2E}com)"),
                Some(r"\A(?:\x{2F}api)"),
                None,
            ),
            spec(None, None, None),
        ];
        let matcher = Matcher::new(&specs).unwrap();
        assert_eq!(
            matcher.match_request("example.com", "/api/x", "GET"),
            vec![0, 1, 2, 3]
        );
        assert_eq!(
            matcher.match_request("example.com:8080", "/", "GET"),
            vec![0, 3]
        );
        assert_eq!(
            matcher.match_request("www.example.com", "/api", "POST"),
            vec![3]
        );
        assert_eq!(matcher.match_request("x", "/api", "get"), vec![3]);
        assert_eq!(matcher.match_request("x", "/apx", "GET"), vec![3]);
    }

    #[test]
    fn shared_patterns_are_deduplicated_and_order_kept() {
        let specs: Vec<RuleSpec> = (0..50)
            .map(|index| {
                spec(
                    None,
                    Some(if index % 2 == 0 {
                        r"\A(?:\x{2F}a)"
                    } else {
                        r"\A(?:\x{2F}b)"
                    }),
                    None,
                )
            })
            .collect();
        let matcher = Matcher::new(&specs).unwrap();
        assert_eq!(matcher.path.rules_by_pattern.len(), 2);
        let even: Vec<u32> = (0..50).filter(|index| index % 2 == 0).collect();
        assert_eq!(matcher.match_request("h", "/a", "GET"), even);
        assert!(matcher.match_request("h", "/c", "GET").is_empty());
    }

    /// A rule whose path pattern sees the path without its leading slash (c2casgiutils 0.14).
    fn bare(path: &str) -> RuleSpec {
        RuleSpec {
            path_with_slash: false,
            ..spec(None, Some(path), None)
        }
    }

    #[test]
    fn each_path_pattern_sees_its_own_form() {
        // What the translator emits for `^/api/`, `^api/`, `^$` (twice), `/`, `\/a` and `a`.
        let specs = [
            spec(None, Some(r"\A(?:\A\x{2F}api\x{2F})"), None),
            bare(r"\A(?:\Aapi\x{2F})"),
            spec(None, Some(r"\A(?:\A(?:\n?\z))"), None),
            bare(r"\A(?:\A(?:\n?\z))"),
            spec(None, Some(r"\A(?:\x{2F})"), None),
            // The same Rust pattern in both forms: two patterns, not one.
            bare(r"\A(?:\x{2F}a)"),
            spec(None, Some(r"\A(?:\x{2F}a)"), None),
            bare(r"\A(?:a)"),
            spec(None, None, None),
        ];
        let matcher = Matcher::new(&specs).unwrap();
        assert_eq!(matcher.path.rules_by_pattern.len(), 8);
        let cases: &[(&str, &[u32])] = &[
            ("/api/x", &[0, 1, 4, 6, 7, 8]),
            ("/a", &[4, 6, 7, 8]),
            ("//a", &[4, 5, 8]),
            // At the root: `/` with its slash, the empty string without.
            ("/", &[3, 4, 8]),
            // A path without a leading slash (a scope no server builds) is seen as is by both.
            ("api/x", &[1, 7, 8]),
            ("", &[2, 3, 8]),
        ];
        for (path, expected) in cases {
            assert_eq!(
                matcher.match_request("h", path, "GET"),
                *expected,
                "{path:?}"
            );
        }
    }

    #[test]
    fn path_forms_combine_with_netloc_and_methods() {
        let mut api = bare(r"\A(?:\Aapi)");
        api.netloc = Some(r"\A(?:h)".to_owned());
        api.methods = Some(vec!["GET".to_owned()]);
        let specs = [api, spec(Some(r"\A(?:h)"), Some(r"\A(?:\x{2F}api)"), None)];
        let matcher = Matcher::new(&specs).unwrap();
        assert_eq!(matcher.match_request("h", "/api", "GET"), vec![0, 1]);
        assert_eq!(matcher.match_request("h", "/api", "POST"), vec![1]);
        assert!(matcher.match_request("x", "/api", "GET").is_empty());
    }

    #[test]
    fn dfa_walk_agrees_with_the_regex_set() {
        let patterns: Vec<String> = [
            r"\A(?:)",
            r"\A(?:a)",
            r"\A(?:a(?:\n?\z))",
            r"\A(?:a(?m:$))",
            r"\A(?:a\n(?m:^)b)",
            r"\A(?:a(?-u:\b))",
            r"\A(?:[\x{0}-\x{9}\x{B}-\x{10FFFF}]{0,}x)",
            r"\A(?:[\x{E9}\x{212A}]+)",
            r"\A(?:a|ab|abc)",
            r"\A(?:[^\x{0}-\x{10FFFF}])",
            r"\A(?:\x{2F}svc1\x{2F})",
            r"\A(?:\x{2F}svc12\x{2F})",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let walker = Walker::new(&patterns, DFA_CACHE_CAPACITY).unwrap();
        let set = RegexSet::new(&patterns).unwrap();
        for haystack in [
            "",
            "a",
            "a\n",
            "a\n\n",
            "a\nb",
            "ab",
            "abc",
            "a\u{e9}",
            "\u{e9}\u{212a}",
            "yyyx",
            "y\nx",
            "/svc1/",
            "/svc12/x",
            "/svc123/",
        ] {
            let expected: Vec<u32> = set
                .matches(haystack)
                .iter()
                .map(|index| index as u32)
                .collect();
            assert_eq!(walker.search(haystack), Some(expected), "{haystack:?}");
        }
    }

    #[test]
    fn dfa_blow_up_falls_back_to_the_regex_set() {
        // `[ab]*a[ab]{12}` needs 2^13 DFA states: a long haystack exhausts a small lazy DFA cache,
        // the walk gives up, and the regex set answers (the same answer).
        let patterns = vec![
            r"\A(?:[ab]{0,}a[ab]{12}\z)".to_owned(),
            r"\A(?:b)".to_owned(),
        ];
        let specs: Vec<RuleSpec> = patterns
            .iter()
            .map(|pattern| spec(None, Some(pattern), None))
            .collect();
        let small = 64 << 10;
        let index = PatternIndex::new(&specs, Field::Path, small).unwrap();
        let set = RegexSet::new(&patterns).unwrap();
        let mut haystack = String::new();
        let mut seed: u32 = 12345;
        for _ in 0..100_000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            haystack.push(if seed & 0x10000 == 0 { 'a' } else { 'b' });
        }
        let walker = index.groups[AS_IS]
            .as_ref()
            .unwrap()
            .walker
            .as_ref()
            .unwrap();
        assert_eq!(walker.search(&haystack), None);
        for end in [13, 1000, 50_000, 100_000] {
            let expected: Vec<u32> = set
                .matches(&haystack[..end])
                .iter()
                .map(|index| index as u32)
                .collect();
            assert_eq!(index.matches(&haystack[..end]), expected);
        }
        // Short inputs still go through the walk, with a fresh cache.
        assert_eq!(walker.search("b"), Some(vec![1]));
    }

    #[test]
    fn no_rules_match_nothing() {
        let matcher = Matcher::new(&[]).unwrap();
        assert!(matcher.is_empty());
        assert!(matcher.match_request("h", "/", "GET").is_empty());
    }

    #[test]
    fn pattern_too_big_is_a_build_error_naming_the_rule() {
        let specs = [
            spec(None, None, None),
            spec(None, Some(r"\A(?:[a-z]{100000}{100000})"), None),
        ];
        let error = Matcher::new(&specs).unwrap_err();
        assert_eq!((error.rule, error.field), (1, Field::Path));
    }

    #[test]
    fn python_line_anchors_have_the_same_meaning() {
        // What the translator emits for Python's `^`/`$` under MULTILINE and a final `$`.
        let cases: &[(&str, &str, bool)] = &[
            (r"\A(?:a(?m:$))", "a", true),
            (r"\A(?:a(?m:$))", "a\nb", true),
            (r"\A(?:a(?m:$))", "ab", false),
            (r"\A(?:a\n(?m:^))", "a\n", true), // Python: re.match('(?m)a\n^', 'a\n') matches
            (r"\A(?:a\n(?m:^)b)", "a\nb", true),
            (r"\A(?:a(?:\n?\z))", "a", true),
            (r"\A(?:a(?:\n?\z))", "a\n", true),
            (r"\A(?:a(?:\n?\z))", "a\n\n", false),
            (r"\A(?:a(?:\n?\z))", "ab", false),
            (r"\A(?:a\z)", "a\n", false),
            (r"\A(?:(?-u:\b))", "", false),
            (r"\A(?:a(?-u:\b))", "a\u{e9}", true), // non-ASCII is not a word character under (?a)
        ];
        for (pattern, haystack, expected) in cases {
            let regex = Regex::new(pattern).unwrap();
            assert_eq!(
                regex.is_match(haystack),
                *expected,
                "{pattern} on {haystack:?}"
            );
        }
    }

    #[test]
    fn placeholder_split_and_render() {
        assert_eq!(split_placeholder(b"a"), vec![b"a".to_vec()]);
        assert_eq!(
            split_placeholder(b"'nonce'"),
            vec![b"".to_vec(), b"".to_vec()]
        );
        assert_eq!(
            split_placeholder(b"'nonce'nonce'"),
            vec![b"".to_vec(), b"nonce'".to_vec()]
        );
        assert_eq!(
            render(&split_placeholder(b"x 'nonce' y 'nonce'"), "N"),
            b"x 'nonce-N' y 'nonce-N'".to_vec()
        );
    }

    #[test]
    fn latin1_maps_bytes_to_code_points() {
        assert_eq!(latin1(b"a\xe9\xff"), "a\u{e9}\u{ff}");
    }

    #[test]
    fn set_replaces_and_moves_to_the_end_remove_removes() {
        let specs = [spec(None, None, None), spec(None, None, None)];
        let rules = [
            edits(&[("x-a", Some("1")), ("server", None)], false),
            edits(&[("x-b", Some("2"))], false),
        ];
        let headers = [("X-A", "0"), ("Server", "s"), ("date", "d"), ("x-b", "old")];
        assert_eq!(
            run(&specs, &rules, 200, &headers, None),
            pairs(&[("date", "d"), ("x-a", "1"), ("x-b", "2")])
        );
    }

    #[test]
    fn keep_existing_leaves_present_headers_only() {
        let specs = [spec(None, None, None), spec(None, None, None)];
        let rules = [
            edits(&[("x-a", Some("1"))], true),
            edits(&[("x-b", Some("2")), ("x-b", Some("3"))], true),
        ];
        let headers = [("X-A", "0")];
        assert_eq!(
            run(&specs, &rules, 200, &headers, None),
            pairs(&[("X-A", "0"), ("x-b", "2")])
        );
    }

    #[test]
    fn status_range_and_content_type_select_rules() {
        let mut html = spec(None, None, None);
        html.content_type = Some(r"\A(?:[Tt]ext\x{2F}html)".to_owned());
        let specs = [html, spec(None, None, None)];
        let mut errors = edits(&[("x-error", Some("1"))], false);
        errors.status_low = 400;
        errors.status_high = 599;
        let rules = [edits(&[("x-html", Some("1"))], false), errors];
        assert_eq!(
            run(
                &specs,
                &rules,
                200,
                &[("Content-Type", "Text/html; q")],
                None
            ),
            pairs(&[("Content-Type", "Text/html; q"), ("x-html", "1")])
        );
        assert_eq!(
            run(&specs, &rules, 404, &[], None),
            pairs(&[("x-error", "1")])
        );
        // Only the first content-type counts.
        assert_eq!(
            run(
                &specs,
                &rules,
                200,
                &[("content-type", "json"), ("content-type", "text/html")],
                None
            ),
            pairs(&[("content-type", "json"), ("content-type", "text/html")])
        );
    }

    #[test]
    fn nonce_is_substituted_and_forbids_caching() {
        let specs = [spec(None, None, None)];
        let rules = [edits(
            &[("content-security-policy", Some("script-src 'nonce'"))],
            false,
        )];
        assert_eq!(
            run(&specs, &rules, 200, &[], Some("N0")),
            pairs(&[
                ("content-security-policy", "script-src 'nonce-N0'"),
                ("cache-control", "no-store")
            ])
        );
        // An existing cache-control wins, whatever its case.
        assert_eq!(
            run(
                &specs,
                &rules,
                200,
                &[("Cache-Control", "max-age=1")],
                Some("N0")
            ),
            pairs(&[
                ("Cache-Control", "max-age=1"),
                ("content-security-policy", "script-src 'nonce-N0'")
            ])
        );
        // A response header carrying the nonce counts as well, even when no rule emits it.
        let plain = [edits(&[("x-a", Some("1"))], false)];
        assert_eq!(
            run(&specs, &plain, 200, &[("x-echo", "N0")], Some("N0")),
            pairs(&[
                ("x-echo", "N0"),
                ("x-a", "1"),
                ("cache-control", "no-store")
            ])
        );
        // Without a nonce the placeholder stays as written and nothing is added.
        assert_eq!(
            run(&specs, &rules, 200, &[], None),
            pairs(&[("content-security-policy", "script-src 'nonce'")])
        );
    }

    #[test]
    fn response_names_are_lowercased_rule_names_compared_exactly() {
        let specs = [spec(None, None, None)];
        let rules = [edits(&[("X-Upper", None)], false)];
        // Python: `name.lower() in {b"X-Upper"}` is never true.
        assert_eq!(
            run(&specs, &rules, 200, &[("X-Upper", "1")], None),
            pairs(&[("X-Upper", "1")])
        );
    }

    /// xorshift64*: a deterministic stream for the fold property below (no dependency needed).
    struct Stream(u64);

    impl Stream {
        fn below(&mut self, bound: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let bound = u64::try_from(bound).expect("a usize fits in u64");
            usize::try_from(self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound)
                .expect("below a usize bound")
        }
    }

    #[test]
    fn fold_equals_apply_without_keep_existing() {
        const NAMES: [&str; 4] = ["x-a", "x-b", "x-c", "X-D"];
        const RESPONSE_NAMES: [&str; 6] = ["x-a", "X-A", "x-b", "X-D", "x-d", "server"];
        let mut stream = Stream(0x9E37_79B9_7F4A_7C15);
        for _ in 0..2000 {
            let rule_count = 1 + stream.below(4);
            let rules: Vec<RuleEdits> = (0..rule_count)
                .map(|_| {
                    let pairs: Vec<(&str, Option<&str>)> = (0..stream.below(4))
                        .map(|index| {
                            let name = NAMES[stream.below(NAMES.len())];
                            let value = ["1", "2", "3"][index % 3];
                            (name, (stream.below(3) > 0).then_some(value))
                        })
                        .collect();
                    edits(&pairs, false)
                })
                .collect();
            let headers: Vec<(&str, &str)> = (0..stream.below(5))
                .map(|_| {
                    let name = RESPONSE_NAMES[stream.below(RESPONSE_NAMES.len())];
                    (name, "v")
                })
                .collect();
            let selected: Vec<u32> = (0..rule_count as u32)
                .filter(|_| stream.below(4) > 0)
                .collect();
            let names: Vec<&[u8]> = headers.iter().map(|(name, _)| name.as_bytes()).collect();
            let values: Vec<&[u8]> = headers.iter().map(|(_, value)| value.as_bytes()).collect();
            let specs = vec![spec(None, None, None); rule_count];
            let matcher = Matcher::new(&specs).unwrap();
            let applied = apply(
                &matcher, &rules, &selected, 200, &names, &values, None, None,
            );
            let folded = fold(&rules, &selected);
            let mut expected: Vec<Out> = (0..names.len())
                .filter(|&index| {
                    !folded
                        .touched
                        .iter()
                        .any(|name| lower_equals(names[index], name))
                })
                .map(Out::Original)
                .collect();
            expected.extend(
                folded
                    .appended
                    .iter()
                    .map(|&(rule, edit)| Out::Emitted(rule, edit)),
            );
            assert_eq!(applied.headers, expected, "{headers:?} {selected:?}");
        }
    }
}
