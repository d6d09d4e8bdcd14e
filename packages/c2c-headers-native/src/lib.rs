//! `c2c_headers_native._native`: the c2c-headers rule engine in Rust.
//!
//! The caller (c2c-headers) validates the configuration and renders every value; this module
//! receives the resulting `c2c_headers_native.Rule` records once, at construction (read by position,
//! `python/c2c_headers_native/_contract.py`), and then answers two calls per request: `match_scope`
//! (or `match`: one pass over a regex set per field) and `apply`. It imports nothing of c2c-headers:
//! what it needs from a scope it does not read is the `request_target` function given at construction.

mod check;
pub mod engine;
pub mod forwarded;
pub mod nonce;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};

pub use check::check_translated;
use engine::{Edit, Field, Folded, Matcher, Out, RuleEdits, RuleSpec, Scratch};

/// Every engine gets an id so that a match handle is only ever applied by the engine that made it.
static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

/// Bound on each plan cache: the sets of matched rules are chosen by (attacker-controlled)
/// requests. Past it, plans are still built, per request, but not kept.
const MAX_PLANS: usize = 1024;

/// An edit's value as handed back to Python.
enum Value {
    Remove,
    /// No placeholder: the `(name, value)` tuple, built once and shared by every response (tuples
    /// and bytes are immutable), with the rule's own bytes objects.
    Fixed(Py<PyTuple>),
    /// Split on the placeholder, rendered per request with the nonce; `as_written` serves a match
    /// without a nonce (a placeholder in a rule that does not ask for one stays as written).
    WithNonce {
        parts: Vec<Vec<u8>>,
        as_written: Py<PyTuple>,
    },
}

/// The folded edits of one sequence of applicable rules (none of which keeps existing headers).
struct EditPlan {
    folded: Folded,
    /// The emitted `(name, value)` tuples for a match without a nonce (values as written).
    as_written: Py<PyTuple>,
    /// Some emitted value holds the placeholder.
    placeholder: bool,
    /// Some emitted header is `cache-control`.
    cache_control: bool,
}

/// What does not change between requests that match the same rules, built once per distinct set.
struct MatchPlan {
    rules: Box<[u32]>,
    needs_nonce: bool,
    /// Some rule looks at the response's content type.
    content_type: bool,
    /// The status range inside which every rule applies.
    status_low: i64,
    status_high: i64,
    /// The plan of all the rules, for a response every rule applies to (no content-type pattern,
    /// status inside the range); None when some rule keeps existing headers (the result depends on
    /// them: the general algorithm runs).
    all: Option<Arc<EditPlan>>,
    /// The plans of the other selections (a rule skipped for its status or content type).
    selections: Mutex<HashMap<Box<[u32]>, Arc<EditPlan>>>,
}

/// The rule engine (the contract: `python/c2c_headers_native/_native.pyi` and c2c-headers' `_engine`).
#[pyclass(frozen, module = "c2c_headers_native")]
struct RuleEngine {
    id: u64,
    matcher: Matcher,
    rules: Vec<RuleEdits>,
    names: Vec<Vec<Py<PyBytes>>>,
    values: Vec<Vec<Value>>,
    /// `(b"cache-control", b"no-store")`, built once.
    no_store: Py<PyTuple>,
    /// Scratch space of matching and the plans, behind one lock taken once per match. It is never
    /// held across a call into Python (which could re-enter the engine, from a finalizer say); when
    /// it is taken anyway, the match runs without it.
    state: Mutex<State>,
    /// Reads the scopes `match_scope` does not read itself (c2c-headers passes its own function).
    request_target: Option<Py<PyAny>>,
}

#[derive(Default)]
struct State {
    scratch: Scratch,
    plans: HashMap<Box<[u32]>, Known>,
}

/// A set of matched rules seen before.
struct Known {
    plan: Arc<MatchPlan>,
    /// Without a nonce a match is immutable: one handle serves every request.
    handle: Option<Py<Match>>,
}

/// What `RuleEngine.match` returns: the matched rules and the request's nonce.
#[pyclass(frozen, module = "c2c_headers_native")]
struct Match {
    engine: u64,
    plan: Arc<MatchPlan>,
    nonce: Option<(String, Py<PyString>)>,
}

#[pymethods]
impl Match {
    /// The request's nonce (base64 of 16 random bytes) when a matched rule needs one.
    #[getter]
    fn nonce(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.nonce.as_ref().map(|(_, text)| text.clone_ref(py))
    }

    fn __repr__(&self) -> String {
        format!(
            "<c2c_headers_native.Match rules={:?} nonce={}>",
            self.plan.rules,
            self.nonce.is_some()
        )
    }
}

/// A response's header list, read once: each item with its name and value.
struct Response<'py> {
    items: Vec<(Bound<'py, PyAny>, Bound<'py, PyBytes>, Bound<'py, PyBytes>)>,
}

impl<'py> Response<'py> {
    fn read(headers: &Bound<'py, PyAny>) -> PyResult<Self> {
        let mut items = Vec::with_capacity(headers.len().unwrap_or(0));
        for item in headers.try_iter()? {
            let item = item?;
            let (name, value) = match item.cast::<PyTuple>() {
                Ok(pair) if pair.len() == 2 => (pair.get_item(0)?, pair.get_item(1)?),
                _ => (item.get_item(0)?, item.get_item(1)?),
            };
            items.push((
                item,
                name.cast_into::<PyBytes>()?,
                value.cast_into::<PyBytes>()?,
            ));
        }
        Ok(Response { items })
    }

    /// The first `content-type` value, decoded as latin-1.
    fn content_type(&self) -> Option<String> {
        self.items
            .iter()
            .find(|(_, name, _)| name.as_bytes().eq_ignore_ascii_case(b"content-type"))
            .map(|(_, _, value)| engine::latin1(value.as_bytes()))
    }
}

/// Whether `list` holds only `(bytes, bytes)` tuples none of which has a name in `touched`.
fn untouched(list: &Bound<'_, PyList>, touched: &[Vec<u8>]) -> PyResult<bool> {
    for item in list.iter() {
        let Ok(pair) = item.cast_exact::<PyTuple>() else {
            return Ok(false);
        };
        if pair.len() != 2 || !pair.get_borrowed_item(1)?.is_exact_instance_of::<PyBytes>() {
            return Ok(false);
        }
        let name = pair.get_borrowed_item(0)?;
        let Ok(name) = name.cast_exact::<PyBytes>() else {
            return Ok(false);
        };
        let name = name.as_bytes();
        if touched
            .iter()
            .any(|touched| engine::lower_equals(name, touched))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A field of the scope, for the fast path of `match_scope`.
enum ScopeText<'py> {
    Missing,
    Text(Bound<'py, PyString>),
    /// Not an exact `str`: the Python functions decide (and raise what they raise).
    Other,
}

impl ScopeText<'_> {
    /// The text, or `default` when the key is missing; None (ask Python) when it is not an exact
    /// `str` or not valid UTF-8.
    fn or(&self, default: &'static str) -> Option<&str> {
        match self {
            ScopeText::Missing => Some(default),
            ScopeText::Text(text) => text.to_str().ok(),
            ScopeText::Other => None,
        }
    }
}

fn scope_text<'py>(
    scope: &Bound<'py, PyDict>,
    key: &Bound<'py, PyString>,
) -> PyResult<ScopeText<'py>> {
    Ok(match scope.get_item(key)? {
        None => ScopeText::Missing,
        Some(value) => match value.cast_into_exact::<PyString>() {
            Ok(text) => ScopeText::Text(text),
            Err(_) => ScopeText::Other,
        },
    })
}

/// What the fast path of `match_scope` makes of a scope.
enum FastMatch {
    /// Read here: the answer of `match`.
    Read(Option<Py<Match>>),
    /// Not a scope read here (see `fast_netloc`): `request_target` reads it.
    NotRead,
}

/// Where the netloc of a request comes from, on the fast path.
enum NetlocSource<'py> {
    Host(Bound<'py, PyBytes>),
    Server(String),
}

impl NetlocSource<'_> {
    /// The netloc: the `Host` value decoded as latin-1 (borrowed when ASCII), or the server's.
    fn text(&self) -> Cow<'_, str> {
        match self {
            NetlocSource::Host(value) => match std::str::from_utf8(value.as_bytes()) {
                Ok(text) if value.as_bytes().is_ascii() => Cow::Borrowed(text),
                _ => Cow::Owned(engine::latin1(value.as_bytes())),
            },
            NetlocSource::Server(text) => Cow::Borrowed(text.as_str()),
        }
    }
}

/// The netloc of a well-formed scope (as c2c-headers' `request_target` reads it); None asks for the
/// Python function (an item that is not a tuple of two bytes before the `Host` header, a server
/// that is not a `(str, int | None)` tuple, a scheme that is not a str).
fn fast_netloc<'py>(scope: &Bound<'py, PyDict>) -> PyResult<Option<NetlocSource<'py>>> {
    let py = scope.py();
    if let Some(headers) = scope.get_item(intern!(py, "headers"))? {
        let host = if let Ok(list) = headers.cast_exact::<PyList>() {
            find_host(list.iter())?
        } else if let Ok(tuple) = headers.cast_exact::<PyTuple>() {
            find_host(tuple.iter())?
        } else {
            return Ok(None);
        };
        match host {
            HostHeader::Found(value) => return Ok(Some(NetlocSource::Host(value))),
            HostHeader::Unknown => return Ok(None),
            HostHeader::Absent => {}
        }
    }
    let server = match scope.get_item(intern!(py, "server"))? {
        None => return Ok(Some(NetlocSource::Server(String::new()))),
        Some(server) if server.is_none() => return Ok(Some(NetlocSource::Server(String::new()))),
        Some(server) => server,
    };
    let Ok(server) = server.cast_exact::<PyTuple>() else {
        return Ok(None);
    };
    if server.len() != 2 {
        return Ok(None);
    }
    let Ok(host) = server.get_item(0)?.cast_into_exact::<PyString>() else {
        return Ok(None);
    };
    let port = server.get_item(1)?;
    let port = if port.is_none() {
        None
    } else if port.is_exact_instance_of::<PyInt>() {
        match port.extract::<i64>() {
            Ok(port) => Some(port),
            Err(_) => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    let default_port = match scope_text(scope, intern!(py, "scheme"))? {
        ScopeText::Missing => Some(80),
        ScopeText::Text(scheme) => match scheme.to_str() {
            Ok("http" | "ws") => Some(80),
            Ok("https" | "wss") => Some(443),
            Ok(_) => None,
            Err(_) => return Ok(None),
        },
        ScopeText::Other => return Ok(None),
    };
    let Ok(host) = host.to_str() else {
        return Ok(None);
    };
    Ok(Some(NetlocSource::Server(match port {
        Some(port) if default_port != Some(port) => format!("{host}:{port}"),
        _ => host.to_owned(),
    })))
}

enum HostHeader<'py> {
    Found(Bound<'py, PyBytes>),
    Absent,
    Unknown,
}

fn find_host<'py>(items: impl Iterator<Item = Bound<'py, PyAny>>) -> PyResult<HostHeader<'py>> {
    for item in items {
        let Ok(pair) = item.cast_exact::<PyTuple>() else {
            return Ok(HostHeader::Unknown);
        };
        if pair.len() != 2 {
            return Ok(HostHeader::Unknown);
        }
        let name = pair.get_borrowed_item(0)?;
        let Ok(name) = name.cast_exact::<PyBytes>() else {
            return Ok(HostHeader::Unknown);
        };
        if name.as_bytes() == b"host" {
            return Ok(match pair.get_item(1)?.cast_into_exact::<PyBytes>() {
                Ok(value) => HostHeader::Found(value),
                Err(_) => HostHeader::Unknown,
            });
        }
    }
    Ok(HostHeader::Absent)
}

/// The path a `request_target` sees: relative to `root_path`, cut at a segment boundary.
fn relative_path<'a>(path: &'a str, root_path: &str) -> &'a str {
    if !root_path.is_empty()
        && let Some(rest) = path.strip_prefix(root_path)
    {
        if rest.is_empty() {
            return "/";
        }
        if rest.starts_with('/') {
            return rest;
        }
    }
    path
}

/// The number of fields of a `c2c_headers_native.Rule` (`python/c2c_headers_native/_contract.py`).
const RULE_FIELDS: usize = 11;

/// One `c2c_headers_native.Rule`, read by position in the record's field order (never by name).
struct RuleRecord<'py> {
    name: String,
    netloc_pattern: Option<String>,
    path_pattern: Option<String>,
    path_with_slash: bool,
    methods: Option<Vec<String>>,
    status_low: i64,
    status_high: i64,
    content_type_pattern: Option<String>,
    edits: Vec<(Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>)>,
    nonce: bool,
    keep_existing: bool,
}

impl<'py> RuleRecord<'py> {
    fn read(rule: &Bound<'py, PyAny>, index: usize) -> PyResult<Self> {
        let fields = match rule.cast::<PyTuple>() {
            Ok(fields) if fields.len() == RULE_FIELDS => fields,
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "rule {index}: expected a c2c_headers_native.Rule (a tuple of {RULE_FIELDS} fields), got {}",
                    repr(rule)
                )));
            }
        };
        let methods = fields.get_item(4)?;
        let methods = if methods.is_none() {
            None
        } else {
            let mut accepted = Vec::new();
            for method in methods.try_iter()? {
                accepted.push(method?.extract::<String>()?);
            }
            Some(accepted)
        };
        let mut edits = Vec::new();
        for edit in fields.get_item(8)?.try_iter()? {
            edits.push(edit?.extract()?);
        }
        Ok(RuleRecord {
            name: fields.get_item(0)?.extract()?,
            netloc_pattern: fields.get_item(1)?.extract()?,
            path_pattern: fields.get_item(2)?.extract()?,
            path_with_slash: fields.get_item(3)?.extract()?,
            methods,
            status_low: fields.get_item(5)?.extract()?,
            status_high: fields.get_item(6)?.extract()?,
            content_type_pattern: fields.get_item(7)?.extract()?,
            edits,
            nonce: fields.get_item(9)?.extract()?,
            keep_existing: fields.get_item(10)?.extract()?,
        })
    }

    fn pattern(&self, field: Field) -> Option<&str> {
        match field {
            Field::Netloc => self.netloc_pattern.as_deref(),
            Field::Path => self.path_pattern.as_deref(),
            Field::ContentType => self.content_type_pattern.as_deref(),
        }
    }
}

/// A class of the package's typed contract (`c2c_headers_native._contract`): its errors.
fn contract_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("c2c_headers_native._contract")?.getattr(name)
}

/// The package's Python translator, with the translations of this construction memoised (rules
/// often share patterns, e.g. one content type).
struct Translator<'py> {
    function: Bound<'py, PyAny>,
    done: HashMap<(String, bool), String>,
}

impl<'py> Translator<'py> {
    fn new(py: Python<'py>) -> PyResult<Self> {
        let function = py
            .import("c2c_headers_native._translate")?
            .getattr("translate")?;
        Ok(Translator {
            function,
            done: HashMap::new(),
        })
    }

    /// Translate one field's Python pattern and check the result against the allowlist.
    fn translate(&mut self, rule: &RuleRecord<'_>, field: Field) -> PyResult<Option<String>> {
        let Some(pattern) = rule.pattern(field) else {
            return Ok(None);
        };
        let py = self.function.py();
        let key = (pattern.to_owned(), field == Field::ContentType);
        if let Some(translated) = self.done.get(&key) {
            return Ok(Some(translated.clone()));
        }
        let refuse =
            |reason: &str| -> PyErr { unsupported(py, &rule.name, field, pattern, reason) };
        let translated = match self.function.call1((pattern, key.1)) {
            Ok(translated) => translated.extract::<String>()?,
            Err(error) if error.is_instance_of::<PyValueError>(py) => {
                return Err(refuse(&error.value(py).str()?.to_string_lossy()));
            }
            Err(error) => return Err(error),
        };
        check::check_translated(&translated).map_err(|reason| refuse(&reason))?;
        self.done.insert(key, translated.clone());
        Ok(Some(translated))
    }
}

fn repr(object: &Bound<'_, PyAny>) -> String {
    object.repr().map_or_else(
        |_| "<unrepresentable>".to_owned(),
        |text| text.to_string_lossy().into_owned(),
    )
}

/// A `c2c_headers_native.PatternNotSupported` naming the rule, the field and the pattern.
fn unsupported(
    py: Python<'_>,
    rule_name: &str,
    field: Field,
    pattern: &str,
    reason: &str,
) -> PyErr {
    match contract_class(py, "PatternNotSupported")
        .and_then(|class| class.call1((rule_name, field.attribute(), pattern, reason)))
    {
        Ok(error) => PyErr::from_value(error),
        Err(error) => error,
    }
}

/// One rule's edits: for matching and folding (`edits`), and as handed back to Python (`names`,
/// `values`), index for index.
struct RuleOutput {
    edits: Vec<Edit>,
    names: Vec<Py<PyBytes>>,
    values: Vec<Value>,
}

fn rule_output(py: Python<'_>, rule: &RuleRecord<'_>) -> PyResult<RuleOutput> {
    let mut edits = Vec::with_capacity(rule.edits.len());
    let mut names = Vec::with_capacity(rule.edits.len());
    let mut values = Vec::with_capacity(rule.edits.len());
    for (name, value) in &rule.edits {
        let split = value
            .as_ref()
            .map(|value| engine::split_placeholder(value.as_bytes()));
        values.push(match (value, &split) {
            (None, _) => Value::Remove,
            (Some(value), Some(parts)) if parts.len() > 1 => Value::WithNonce {
                parts: parts.clone(),
                as_written: PyTuple::new(py, [name.as_any(), value.as_any()])?.unbind(),
            },
            (Some(value), _) => {
                Value::Fixed(PyTuple::new(py, [name.as_any(), value.as_any()])?.unbind())
            }
        });
        edits.push(Edit {
            name: name.as_bytes().to_vec(),
            value: split,
        });
        names.push(name.clone().unbind());
    }
    Ok(RuleOutput {
        edits,
        names,
        values,
    })
}

#[pymethods]
impl RuleEngine {
    /// Build the engine from validated, rendered `Rule` records (read once; later changes are not
    /// seen). ``request_target`` reads the scopes ``match_scope`` does not read itself.
    #[new]
    #[pyo3(signature = (rules, request_target=None))]
    fn new(
        py: Python<'_>,
        rules: &Bound<'_, PyAny>,
        request_target: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let mut records = Vec::new();
        for (index, rule) in rules.try_iter()?.enumerate() {
            records.push(RuleRecord::read(&rule?, index)?);
        }
        // Rules and edits are indexed with u32 throughout (`engine.rs`): what does not fit is refused.
        if u32::try_from(records.len()).is_err()
            || records
                .iter()
                .any(|rule| u32::try_from(rule.edits.len()).is_err())
        {
            return Err(PyValueError::new_err(
                "too many rules or edits: the native engine indexes them with 32 bits",
            ));
        }
        let mut translator = Translator::new(py)?;
        let mut specs = Vec::with_capacity(records.len());
        let mut rule_edits = Vec::with_capacity(records.len());
        let mut names = Vec::with_capacity(records.len());
        let mut values = Vec::with_capacity(records.len());
        for rule in &records {
            specs.push(RuleSpec {
                netloc: translator.translate(rule, Field::Netloc)?,
                path: translator.translate(rule, Field::Path)?,
                // The form of the path the pattern sees, decided by the caller (c2c-headers).
                path_with_slash: rule.path_with_slash,
                methods: rule.methods.clone(),
                content_type: translator.translate(rule, Field::ContentType)?,
                nonce: rule.nonce,
            });
            let output = rule_output(py, rule)?;
            rule_edits.push(RuleEdits {
                status_low: rule.status_low,
                status_high: rule.status_high,
                edits: output.edits,
                keep_existing: rule.keep_existing,
            });
            names.push(output.names);
            values.push(output.values);
        }
        let matcher = Matcher::new(&specs).map_err(|error| {
            let rule = &records[error.rule];
            unsupported(
                py,
                &rule.name,
                error.field,
                rule.pattern(error.field).unwrap_or_default(),
                &format!(
                    "the translated pattern does not compile in Rust: {}",
                    error.reason
                ),
            )
        })?;
        Ok(RuleEngine {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            matcher,
            rules: rule_edits,
            names,
            values,
            no_store: PyTuple::new(
                py,
                [
                    PyBytes::new(py, b"cache-control"),
                    PyBytes::new(py, b"no-store"),
                ],
            )?
            .unbind(),
            state: Mutex::new(State::default()),
            request_target,
        })
    }

    /// Always ``"native"``.
    #[getter]
    #[expect(
        clippy::unused_self,
        reason = "a Python property: a PyO3 getter takes self"
    )]
    fn name(&self) -> &'static str {
        "native"
    }

    /// Select the rules matching the request; None when none does. The match carries the plan of
    /// its set of rules and, when one needs it, a fresh nonce.
    #[pyo3(name = "match")]
    fn match_request(
        &self,
        py: Python<'_>,
        netloc: &str,
        path: &str,
        method: &str,
    ) -> PyResult<Option<Py<Match>>> {
        let rules = if let Ok(mut state) = self.state.try_lock() {
            let State { scratch, plans } = &mut *state;
            self.matcher.match_into(scratch, netloc, path, method);
            if scratch.selected.is_empty() {
                return Ok(None);
            }
            if let Some(known) = plans.get(scratch.selected.as_slice()) {
                if let Some(handle) = &known.handle {
                    return Ok(Some(handle.clone_ref(py)));
                }
                let plan = known.plan.clone();
                drop(state);
                return self.new_match(py, plan).map(Some);
            }
            scratch.selected.as_slice().into()
        } else {
            let selected = self.matcher.match_request(netloc, path, method);
            if selected.is_empty() {
                return Ok(None);
            }
            selected.into_boxed_slice()
        };
        let plan = self.match_plan(py, rules)?;
        let handle = if plan.needs_nonce {
            None
        } else {
            Some(Py::new(
                py,
                Match {
                    engine: self.id,
                    plan: plan.clone(),
                    nonce: None,
                },
            )?)
        };
        if let Ok(mut state) = self.state.try_lock()
            && state.plans.len() < MAX_PLANS
        {
            state
                .plans
                .entry(plan.rules.clone())
                .or_insert_with(|| Known {
                    plan: plan.clone(),
                    handle: handle.as_ref().map(|handle| handle.clone_ref(py)),
                });
        }
        match handle {
            Some(handle) => Ok(Some(handle)),
            None => self.new_match(py, plan).map(Some),
        }
    }

    /// ``match(*request_target(scope))`` in one call.
    ///
    /// A well-formed scope (a dict; headers a list or tuple of ``(bytes, bytes)`` tuples; str path,
    /// root path, method and scheme; server ``(str, int | None)`` or None) is read here; anything
    /// else is handed to the ``request_target`` given at construction (so both give the same answer
    /// and raise the same errors), or raises ``ScopeNotSupported`` when none was given.
    fn match_scope(&self, py: Python<'_>, scope: &Bound<'_, PyAny>) -> PyResult<Option<Py<Match>>> {
        if let Ok(dict) = scope.cast_exact::<PyDict>()
            && let FastMatch::Read(found) = self.match_fast(py, dict)?
        {
            return Ok(found);
        }
        let Some(request_target) = &self.request_target else {
            return Err(PyErr::from_value(contract_class(py, "ScopeNotSupported")?.call1((
                "the native engine does not read this scope itself and no request_target was given",
            ))?));
        };
        let (netloc, path, method): (String, String, String) =
            request_target.bind(py).call1((scope,))?.extract()?;
        self.match_request(py, &netloc, &path, &method)
    }

    /// Return the response headers after the matched rules' edits.
    fn apply<'py>(
        &self,
        py: Python<'py>,
        r#match: &Bound<'py, PyAny>,
        status: i64,
        headers: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let handle = r#match.cast::<Match>()?.get();
        if handle.engine != self.id {
            return Err(PyValueError::new_err(
                "this match was made by another engine",
            ));
        }
        let plan = &handle.plan;
        let nonce = handle.nonce.as_ref().map(|(text, _)| text.as_str());
        let every_rule =
            !plan.content_type && plan.status_low <= status && status <= plan.status_high;
        // The usual case: no nonce, every rule applies, and the response's list (of bytes pairs) has
        // no header a rule touches. Copy it and append the plan's tuples, two calls.
        if let (None, Some(all), true, Ok(list)) =
            (nonce, &plan.all, every_rule, headers.cast_exact::<PyList>())
            && untouched(list, &all.folded.touched)?
        {
            let out = list.get_slice(0, list.len());
            let at = out.len();
            out.set_slice(at, at, all.as_written.bind(py).as_any())?;
            return Ok(out);
        }
        let response = Response::read(headers)?;
        let edits = match &plan.all {
            None => return self.apply_general(py, handle, status, &response),
            Some(all) if every_rule => all.clone(),
            Some(_) => self.selection_plan(py, plan, status, &response)?,
        };
        let touched = &edits.folded.touched;
        let is_kept = |name: &[u8]| {
            !touched
                .iter()
                .any(|touched| engine::lower_equals(name, touched))
        };
        let kept = response
            .items
            .iter()
            .filter(|(_, name, _)| is_kept(name.as_bytes()));
        // Usually every header of the response is kept: copy the list in one call.
        let out = match headers.cast_exact::<PyList>() {
            Ok(list)
                if list.len() == response.items.len()
                    && kept.clone().count() == response.items.len() =>
            {
                list.get_slice(0, list.len())
            }
            _ => PyList::new(py, kept.clone().map(|(item, _, _)| item))?,
        };
        let Some(nonce) = nonce else {
            let at = out.len();
            out.set_slice(at, at, edits.as_written.bind(py).as_any())?;
            return Ok(out);
        };
        // The nonce path: the kept headers of the application are scanned once (usually a few).
        let (mut carries, mut cache_control) = (edits.placeholder, edits.cache_control);
        for (_, name, value) in kept {
            carries = carries || engine::contains(value.as_bytes(), nonce.as_bytes());
            cache_control =
                cache_control || engine::lower_equals(name.as_bytes(), b"cache-control");
        }
        for &(rule, edit) in &edits.folded.appended {
            out.append(self.emitted(py, rule, edit, Some(nonce))?)?;
        }
        if carries && !cache_control {
            out.append(self.no_store.bind(py))?;
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        format!(
            "<c2c_headers_native.RuleEngine rules={}>",
            self.matcher.len()
        )
    }
}

impl RuleEngine {
    /// `match_scope` for a well-formed scope read here.
    fn match_fast(&self, py: Python<'_>, scope: &Bound<'_, PyDict>) -> PyResult<FastMatch> {
        let Some(netloc) = fast_netloc(scope)? else {
            return Ok(FastMatch::NotRead);
        };
        let path = scope_text(scope, intern!(py, "path"))?;
        let root_path = scope_text(scope, intern!(py, "root_path"))?;
        let method = scope_text(scope, intern!(py, "method"))?;
        let (Some(path), Some(root_path), ScopeText::Text(method)) =
            (path.or("/"), root_path.or(""), &method)
        else {
            return Ok(FastMatch::NotRead);
        };
        let Ok(method) = method.to_str() else {
            return Ok(FastMatch::NotRead);
        };
        let path = relative_path(path, root_path);
        self.match_request(py, &netloc.text(), path, method)
            .map(FastMatch::Read)
    }

    /// A match of `plan`, with a fresh nonce when it needs one.
    fn new_match(&self, py: Python<'_>, plan: Arc<MatchPlan>) -> PyResult<Py<Match>> {
        let nonce = if plan.needs_nonce {
            let text = nonce::new_nonce()
                .map_err(|error| PyOSError::new_err(format!("no random bytes: {error}")))?;
            let object = PyString::new(py, &text).unbind();
            Some((text, object))
        } else {
            None
        };
        Py::new(
            py,
            Match {
                engine: self.id,
                plan,
                nonce,
            },
        )
    }

    /// What does not change between the requests that match `rules`.
    fn match_plan(&self, py: Python<'_>, rules: Box<[u32]>) -> PyResult<Arc<MatchPlan>> {
        let keep = rules
            .iter()
            .any(|&rule| self.rules[rule as usize].keep_existing);
        let plan = Arc::new(MatchPlan {
            needs_nonce: self.matcher.needs_nonce(&rules),
            content_type: rules
                .iter()
                .any(|&rule| self.matcher.content_type_pattern(rule).is_some()),
            status_low: rules
                .iter()
                .map(|&rule| self.rules[rule as usize].status_low)
                .max()
                .unwrap_or(i64::MIN),
            status_high: rules
                .iter()
                .map(|&rule| self.rules[rule as usize].status_high)
                .min()
                .unwrap_or(i64::MAX),
            all: if keep {
                None
            } else {
                Some(Arc::new(self.edit_plan(py, &rules)?))
            },
            selections: Mutex::new(HashMap::new()),
            rules,
        });
        Ok(plan)
    }

    fn edit_plan(&self, py: Python<'_>, selected: &[u32]) -> PyResult<EditPlan> {
        let folded = engine::fold(&self.rules, selected);
        let mut as_written = Vec::with_capacity(folded.appended.len());
        for &(rule, edit) in &folded.appended {
            as_written.push(self.emitted(py, rule, edit, None)?);
        }
        let as_written = PyTuple::new(py, as_written)?.unbind();
        let placeholder = folded.appended.iter().any(|&(rule, edit)| {
            matches!(
                self.values[rule as usize][edit as usize],
                Value::WithNonce { .. }
            )
        });
        let cache_control = folded.appended.iter().any(|&(rule, edit)| {
            self.rules[rule as usize].edits[edit as usize].name == b"cache-control"
        });
        Ok(EditPlan {
            folded,
            as_written,
            placeholder,
            cache_control,
        })
    }

    /// The plan of the matched rules that apply to this response (status and content type).
    fn selection_plan(
        &self,
        py: Python<'_>,
        plan: &MatchPlan,
        status: i64,
        response: &Response<'_>,
    ) -> PyResult<Arc<EditPlan>> {
        let content_type = if plan.content_type {
            response.content_type()
        } else {
            None
        };
        let selected = engine::applicable(
            &self.matcher,
            &self.rules,
            &plan.rules,
            status,
            content_type.as_deref(),
        );
        if let Ok(selections) = plan.selections.try_lock()
            && let Some(edits) = selections.get(selected.as_slice())
        {
            return Ok(edits.clone());
        }
        let edits = Arc::new(self.edit_plan(py, &selected)?);
        if let Ok(mut selections) = plan.selections.try_lock()
            && selections.len() < MAX_PLANS
        {
            selections
                .entry(selected.into_boxed_slice())
                .or_insert_with(|| edits.clone());
        }
        Ok(edits)
    }

    /// The `(name, value)` tuple of an emitted edit, with the nonce substituted.
    fn emitted<'py>(
        &self,
        py: Python<'py>,
        rule: u32,
        edit: u32,
        nonce: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (rule, edit) = (rule as usize, edit as usize);
        Ok(match (&self.values[rule][edit], nonce) {
            (Value::Fixed(pair), _) => pair.bind(py).clone().into_any(),
            (Value::WithNonce { parts, .. }, Some(nonce)) => {
                let name = self.names[rule][edit].bind(py);
                let value = PyBytes::new(py, &engine::render(parts, nonce));
                PyTuple::new(py, [name.as_any(), value.as_any()])?.into_any()
            }
            (Value::WithNonce { as_written, .. }, None) => as_written.bind(py).clone().into_any(),
            (Value::Remove, _) => unreachable!("removals are never emitted"),
        })
    }

    /// The general algorithm, for rules that keep existing headers (see `engine::apply`).
    fn apply_general<'py>(
        &self,
        py: Python<'py>,
        handle: &Match,
        status: i64,
        response: &Response<'py>,
    ) -> PyResult<Bound<'py, PyList>> {
        let names: Vec<&[u8]> = response
            .items
            .iter()
            .map(|(_, name, _)| name.as_bytes())
            .collect();
        let values: Vec<&[u8]> = response
            .items
            .iter()
            .map(|(_, _, value)| value.as_bytes())
            .collect();
        let content_type = if handle.plan.content_type {
            response.content_type()
        } else {
            None
        };
        let nonce = handle.nonce.as_ref().map(|(text, _)| text.as_str());
        let applied = engine::apply(
            &self.matcher,
            &self.rules,
            &handle.plan.rules,
            status,
            &names,
            &values,
            content_type.as_deref(),
            nonce,
        );
        let mut out: Vec<Bound<'py, PyAny>> = Vec::with_capacity(applied.headers.len() + 1);
        for item in applied.headers {
            out.push(match item {
                Out::Original(index) => response.items[index].0.clone(),
                Out::Emitted(rule, edit) => self.emitted(py, rule, edit, nonce)?,
            });
        }
        if applied.add_no_store {
            out.push(self.no_store.bind(py).clone().into_any());
        }
        PyList::new(py, out)
    }
}

/// The Rust side of `c2c_headers_native`.
#[pymodule]
#[pyo3(name = "_native")]
fn native_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_class::<RuleEngine>()?;
    module.add_class::<Match>()?;
    module.add_class::<forwarded::ForwardedRewriter>()?;
    Ok(())
}
