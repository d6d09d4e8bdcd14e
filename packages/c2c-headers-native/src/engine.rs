//! The rule engine without Python: request matching over regex sets, and the response edits.
//!
//! Patterns arrive already translated to the Rust dialect (see `python/c2c_headers_native/_translate.py`)
//! and anchored with `\A`; `check::check_translated` verifies they stay inside the translator's
//! allowlist before anything is compiled.

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder, SetMatches};

/// Room for large rule sets: the defaults (10 MiB program, 2 MiB lazy DFA cache) are sized for one
/// regex, a set of thousands of patterns needs more to keep the lazy DFA from thrashing.
const SIZE_LIMIT: usize = 256 << 20;
const DFA_SIZE_LIMIT: usize = 64 << 20;

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

/// Deduplicated patterns of one field, matched in one pass.
#[derive(Debug)]
struct PatternIndex {
    set: RegexSet,
    /// For each unique pattern, the rules (ascending) that use it.
    rules_by_pattern: Vec<Vec<u32>>,
    /// Rules without a pattern for this field: they always pass it.
    unconditional: Vec<u32>,
    /// For each rule, its pattern's index in `set`.
    pattern_of_rule: Vec<Option<u32>>,
}

fn unique_index(patterns: &mut Vec<String>, pattern: &str) -> u32 {
    match patterns.iter().position(|known| known == pattern) {
        Some(index) => index as u32,
        None => {
            patterns.push(pattern.to_owned());
            (patterns.len() - 1) as u32
        }
    }
}

fn compile_one(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map_err(|error| error.to_string())
}

impl PatternIndex {
    fn new(specs: &[RuleSpec], field: Field) -> Result<Self, BuildError> {
        let mut patterns: Vec<String> = Vec::new();
        let mut first_user: Vec<usize> = Vec::new();
        let mut pattern_of_rule = Vec::with_capacity(specs.len());
        let mut unconditional = Vec::new();
        // Deduplicate through a map: `unique_index` is quadratic, fine for the few patterns of the
        // other fields, not for thousands.
        let mut seen = std::collections::HashMap::<&str, u32>::new();
        for (rule, spec) in specs.iter().enumerate() {
            let pattern = match field {
                Field::Netloc => spec.netloc.as_deref(),
                Field::Path => spec.path.as_deref(),
                Field::ContentType => spec.content_type.as_deref(),
            };
            match pattern {
                None => {
                    unconditional.push(rule as u32);
                    pattern_of_rule.push(None);
                }
                Some(pattern) => {
                    let index = *seen.entry(pattern).or_insert_with(|| {
                        first_user.push(rule);
                        unique_index(&mut patterns, pattern)
                    });
                    pattern_of_rule.push(Some(index));
                }
            }
        }
        let set = RegexSetBuilder::new(&patterns)
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
        let mut rules_by_pattern = vec![Vec::new(); patterns.len()];
        for (rule, index) in pattern_of_rule.iter().enumerate() {
            if let Some(index) = index {
                rules_by_pattern[*index as usize].push(rule as u32);
            }
        }
        Ok(PatternIndex {
            set,
            rules_by_pattern,
            unconditional,
            pattern_of_rule,
        })
    }

    fn matches(&self, haystack: &str) -> SetMatches {
        self.set.matches(haystack)
    }

    /// How many rules pass this field for the given set matches.
    fn candidate_count(&self, matched: &SetMatches) -> usize {
        self.unconditional.len()
            + matched
                .iter()
                .map(|index| self.rules_by_pattern[index].len())
                .sum::<usize>()
    }

    fn candidates(&self, matched: &SetMatches) -> Vec<u32> {
        let mut rules = self.unconditional.clone();
        for index in matched.iter() {
            rules.extend_from_slice(&self.rules_by_pattern[index]);
        }
        rules
    }

    fn passes(&self, rule: u32, matched: &SetMatches) -> bool {
        match self.pattern_of_rule[rule as usize] {
            None => true,
            Some(index) => matched.matched(index as usize),
        }
    }
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
    pub fn new(specs: &[RuleSpec]) -> Result<Self, BuildError> {
        let netloc = PatternIndex::new(specs, Field::Netloc)?;
        let path = PatternIndex::new(specs, Field::Path)?;
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
    pub fn match_request(&self, netloc: &str, path: &str, method: &str) -> Vec<u32> {
        let netlocs = self.netloc.matches(netloc);
        let paths = self.path.matches(path);
        // Enumerate the more selective field, filter by the other: the work follows the number of
        // candidate rules, not the size of the rule set.
        let (candidates, other, other_matched) =
            if self.path.candidate_count(&paths) <= self.netloc.candidate_count(&netlocs) {
                (self.path.candidates(&paths), &self.netloc, &netlocs)
            } else {
                (self.netloc.candidates(&netlocs), &self.path, &paths)
            };
        let mut selected: Vec<u32> = candidates
            .into_iter()
            .filter(|&rule| other.passes(rule, other_matched))
            .filter(|&rule| match &self.methods[rule as usize] {
                None => true,
                Some(methods) => methods.iter().any(|accepted| accepted == method),
            })
            .collect();
        selected.sort_unstable();
        selected
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
fn lower_equals(header_name: &[u8], edit_name: &[u8]) -> bool {
    header_name.len() == edit_name.len()
        && header_name
            .iter()
            .zip(edit_name)
            .all(|(header, edit)| header.to_ascii_lowercase() == *edit)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
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
    matched: &[u32],
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
    // Several rules often share a content-type pattern: evaluate each at most once per response.
    let mut verdicts: Vec<Option<bool>> = vec![None; matcher.content_types.len()];
    for &rule_index in matched {
        let rule = &rules[rule_index as usize];
        if status < rule.status_low || status > rule.status_high {
            continue;
        }
        if let Some(pattern) = matcher.content_type_pattern(rule_index) {
            let accepted = match content_type {
                None => false,
                Some(value) => *verdicts[pattern as usize]
                    .get_or_insert_with(|| matcher.content_type_matches(pattern, value)),
            };
            if !accepted {
                continue;
            }
        }
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
