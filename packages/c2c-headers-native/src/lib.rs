//! `c2c_headers_native._native`: the c2c-headers rule engine in Rust.
//!
//! The Python side (c2c-headers) validates the configuration and renders every value; this module
//! receives the resulting `CompiledRule` objects once, at construction, and then answers two calls
//! per request: `match` (one pass over a regex set per field) and `apply`.

mod check;
pub mod engine;
pub mod nonce;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

pub use check::check_translated;
use engine::{Edit, Field, Matcher, Out, RuleEdits, RuleSpec};

/// Every engine gets an id so that a match handle is only ever applied by the engine that made it.
static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

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

/// The rule engine (see `c2c_headers._engine` for the contract).
#[pyclass(frozen, module = "c2c_headers_native")]
struct RuleEngine {
    id: u64,
    matcher: Matcher,
    rules: Vec<RuleEdits>,
    names: Vec<Vec<Py<PyBytes>>>,
    values: Vec<Vec<Value>>,
    /// `(b"cache-control", b"no-store")`, built once.
    no_store: Py<PyTuple>,
}

/// What `RuleEngine.match` returns: the matched rules and the request's nonce.
#[pyclass(frozen, module = "c2c_headers_native")]
struct Match {
    engine: u64,
    rules: Box<[u32]>,
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
            self.rules,
            self.nonce.is_some()
        )
    }
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

    /// Translate one Python pattern and check the result against the allowlist.
    fn translate(
        &mut self,
        rule_name: &str,
        field: Field,
        pattern: &Bound<'py, PyAny>,
    ) -> PyResult<Option<String>> {
        if pattern.is_none() {
            return Ok(None);
        }
        let py = pattern.py();
        let key = (pattern.extract::<String>()?, field == Field::ContentType);
        if let Some(translated) = self.done.get(&key) {
            return Ok(Some(translated.clone()));
        }
        let refuse =
            |reason: &str| -> PyErr { unsupported(rule_name, field, &repr(pattern), reason) };
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
    object
        .repr()
        .map(|text| text.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "<unrepresentable>".to_owned())
}

fn unsupported(rule_name: &str, field: Field, pattern: &str, reason: &str) -> PyErr {
    PyValueError::new_err(format!(
        "unsupported pattern {pattern} in rule {rule_name} ({}): {reason}",
        field.attribute()
    ))
}

fn truthy(rule: &Bound<'_, PyAny>, attribute: &str) -> PyResult<bool> {
    rule.getattr(attribute)?.is_truthy()
}

#[pymethods]
impl RuleEngine {
    /// Build the engine from validated, rendered rules (read once; later changes are not seen).
    #[new]
    fn new(py: Python<'_>, rules: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut translator = Translator::new(py)?;
        let mut specs = Vec::new();
        let mut rule_edits = Vec::new();
        let mut names = Vec::new();
        let mut values = Vec::new();
        let mut rule_names = Vec::new();
        let mut rule_objects = Vec::new();
        for rule in rules.try_iter()? {
            let rule = rule?;
            let rule_name = repr(&rule.getattr("name")?);
            let methods = rule.getattr("methods")?;
            let methods = if methods.is_none() {
                None
            } else {
                let mut accepted = Vec::new();
                for method in methods.try_iter()? {
                    accepted.push(method?.extract::<String>()?);
                }
                Some(accepted)
            };
            specs.push(RuleSpec {
                netloc: translator.translate(
                    &rule_name,
                    Field::Netloc,
                    &rule.getattr("netloc_pattern")?,
                )?,
                path: translator.translate(
                    &rule_name,
                    Field::Path,
                    &rule.getattr("path_pattern")?,
                )?,
                methods,
                content_type: translator.translate(
                    &rule_name,
                    Field::ContentType,
                    &rule.getattr("content_type_pattern")?,
                )?,
                nonce: truthy(&rule, "nonce")?,
            });
            let mut edits = Vec::new();
            let mut edit_names = Vec::new();
            let mut edit_values = Vec::new();
            for edit in rule.getattr("edits")?.try_iter()? {
                let (name, value): (Bound<'_, PyBytes>, Option<Bound<'_, PyBytes>>) =
                    edit?.extract()?;
                let split = value
                    .as_ref()
                    .map(|value| engine::split_placeholder(value.as_bytes()));
                edit_values.push(match (&value, &split) {
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
                edit_names.push(name.unbind());
            }
            rule_edits.push(RuleEdits {
                status_low: rule.getattr("status_low")?.extract()?,
                status_high: rule.getattr("status_high")?.extract()?,
                edits,
                keep_existing: truthy(&rule, "keep_existing")?,
            });
            names.push(edit_names);
            values.push(edit_values);
            rule_names.push(rule_name);
            rule_objects.push(rule);
        }
        let matcher = Matcher::new(&specs).map_err(|error| {
            let pattern = rule_objects[error.rule].getattr(error.field.attribute())?;
            Ok::<PyErr, PyErr>(unsupported(
                &rule_names[error.rule],
                error.field,
                &repr(&pattern),
                &format!(
                    "the translated pattern does not compile in Rust: {}",
                    error.reason
                ),
            ))
        });
        let matcher = match matcher {
            Ok(matcher) => matcher,
            Err(Ok(error)) | Err(Err(error)) => return Err(error),
        };
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
        })
    }

    /// Always ``"native"``.
    #[getter]
    fn name(&self) -> &'static str {
        "native"
    }

    /// Select the rules matching the request; None when none does.
    #[pyo3(name = "match")]
    fn match_request(
        &self,
        py: Python<'_>,
        netloc: &str,
        path: &str,
        method: &str,
    ) -> PyResult<Option<Match>> {
        let rules = self.matcher.match_request(netloc, path, method);
        if rules.is_empty() {
            return Ok(None);
        }
        let nonce = if self.matcher.needs_nonce(&rules) {
            let text = nonce::new_nonce()
                .map_err(|error| PyOSError::new_err(format!("no random bytes: {error}")))?;
            let object = PyString::new(py, &text).unbind();
            Some((text, object))
        } else {
            None
        };
        Ok(Some(Match {
            engine: self.id,
            rules: rules.into_boxed_slice(),
            nonce,
        }))
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
        let mut items: Vec<Bound<'py, PyAny>> = Vec::new();
        let mut name_objects: Vec<Bound<'py, PyBytes>> = Vec::new();
        let mut value_objects: Vec<Bound<'py, PyBytes>> = Vec::new();
        for item in headers.try_iter()? {
            let item = item?;
            let (name, value) = match item.cast::<PyTuple>() {
                Ok(pair) if pair.len() == 2 => (pair.get_item(0)?, pair.get_item(1)?),
                _ => (item.get_item(0)?, item.get_item(1)?),
            };
            name_objects.push(name.cast_into::<PyBytes>()?);
            value_objects.push(value.cast_into::<PyBytes>()?);
            items.push(item);
        }
        let names: Vec<&[u8]> = name_objects.iter().map(|name| name.as_bytes()).collect();
        let values: Vec<&[u8]> = value_objects.iter().map(|value| value.as_bytes()).collect();
        // Decode the content type only when a matched rule looks at it.
        let content_type = if handle
            .rules
            .iter()
            .any(|&rule| self.matcher.content_type_pattern(rule).is_some())
        {
            names
                .iter()
                .position(|name| name.eq_ignore_ascii_case(b"content-type"))
                .map(|index| engine::latin1(values[index]))
        } else {
            None
        };
        let nonce = handle.nonce.as_ref().map(|(text, _)| text.as_str());
        let applied = engine::apply(
            &self.matcher,
            &self.rules,
            &handle.rules,
            status,
            &names,
            &values,
            content_type.as_deref(),
            nonce,
        );
        let mut out: Vec<Bound<'py, PyAny>> = Vec::with_capacity(applied.headers.len() + 1);
        for item in applied.headers {
            out.push(match item {
                Out::Original(index) => items[index].clone(),
                Out::Emitted(rule, edit) => {
                    let (rule, edit) = (rule as usize, edit as usize);
                    match (&self.values[rule][edit], nonce) {
                        (Value::Fixed(pair), _) => pair.bind(py).clone().into_any(),
                        (Value::WithNonce { parts, .. }, Some(nonce)) => {
                            let name = self.names[rule][edit].bind(py);
                            let value = PyBytes::new(py, &engine::render(parts, nonce));
                            PyTuple::new(py, [name.as_any(), value.as_any()])?.into_any()
                        }
                        (Value::WithNonce { as_written, .. }, None) => {
                            as_written.bind(py).clone().into_any()
                        }
                        (Value::Remove, _) => unreachable!("removals are never emitted"),
                    }
                }
            });
        }
        if applied.add_no_store {
            out.push(self.no_store.bind(py).clone().into_any());
        }
        PyList::new(py, out)
    }

    fn __repr__(&self) -> String {
        format!(
            "<c2c_headers_native.RuleEngine rules={}>",
            self.matcher.len()
        )
    }
}

/// The Rust side of `c2c_headers_native`.
#[pymodule]
#[pyo3(name = "_native")]
fn native_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_class::<RuleEngine>()?;
    module.add_class::<Match>()?;
    Ok(())
}
