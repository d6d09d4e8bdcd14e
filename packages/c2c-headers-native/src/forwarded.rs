//! The per-request part of c2c-headers' `ForwardedHeadersMiddleware`, for well-formed scopes.
//!
//! c2c-headers resolves every combination of forwarded headers once, in Python, and keeps the
//! result in a dict it shares with a `ForwardedRewriter`. Per request, the rewriter reads the
//! `headers` list, builds the same cache key as the Python side, and when the key is known writes
//! the rewrite into the scope; anything else (a key not resolved yet, a list that is not a list of
//! `(name, value)` tuples of bytes, no `Host` line or several) it leaves untouched and
//! answers `false`, and the Python path takes the request whole. No parsing, no validation and no
//! decision happen here: the rewriter only repeats, faster, what the Python side decided.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

/// One header name the middleware reads.
struct Name {
    /// The lower-case name, compared ASCII-case-insensitively (as `name.lower()` on the Python side).
    lower: Vec<u8>,
    /// The lower-case name as the Python side puts it in the cache key.
    canonical: Py<PyBytes>,
    host: bool,
}

/// The cached rewrites of one `ForwardedHeadersMiddleware`, applied in Rust.
///
/// `cache` maps the Python side's key `(scope type, scheme, Host header value, ((name, value), ...),
/// None)` to None (nothing to rewrite) or to `(updates, host_line, prefix, original_host)`:
/// `updates` a dict written into the scope, `host_line` the new `(b"host", value)` line or None,
/// `prefix` None or `(prefix, prefix encoded in latin-1)` to put before `root_path`, `path` and a
/// bytes `raw_path`, `original_host` the request's `Host` value as text. The scope keys of the peer and of the original values are given at construction.
#[pyclass(frozen, module = "c2c_headers_native")]
pub struct ForwardedRewriter {
    names: Vec<Name>,
    cache: Py<PyDict>,
    peer_key: Py<PyString>,
    original_key: Py<PyString>,
}

/// What the scan of a header list found.
struct Scan<'py> {
    /// `(name, value)` of every forwarded line, in order, with the canonical lower-case name.
    pairs: Vec<Bound<'py, PyAny>>,
    /// The `Host` line's position and value, when there is exactly one.
    host: Option<(usize, Bound<'py, PyBytes>)>,
    host_lines: usize,
}

impl ForwardedRewriter {
    /// Read the list; None when an item is not a 2-tuple with a bytes name, or a line read has a
    /// value that is not bytes (the Python side decides).
    fn scan<'py>(&self, headers: &Bound<'py, PyList>) -> PyResult<Option<Scan<'py>>> {
        let py = headers.py();
        let mut scan = Scan {
            pairs: Vec::new(),
            host: None,
            host_lines: 0,
        };
        for (index, item) in headers.iter().enumerate() {
            let Ok(line) = item.cast_exact::<PyTuple>() else {
                return Ok(None);
            };
            if line.len() != 2 {
                return Ok(None);
            }
            let name = line.get_borrowed_item(0)?;
            let Ok(name) = name.cast_exact::<PyBytes>() else {
                return Ok(None);
            };
            let bytes = name.as_bytes();
            let Some(known) = self
                .names
                .iter()
                .find(|known| bytes.eq_ignore_ascii_case(&known.lower))
            else {
                continue;
            };
            // The value of a line read (any other line is copied as it is, as the Python side does).
            let value = line.get_item(1)?;
            let Ok(value) = value.cast_into_exact::<PyBytes>() else {
                return Ok(None);
            };
            if known.host {
                scan.host_lines += 1;
                scan.host = Some((index, value));
            } else if bytes == known.lower.as_slice() {
                // Already the key's pair: the line itself (equal to `(canonical, value)`).
                scan.pairs.push(item.clone());
            } else {
                let pair = PyTuple::new(py, [known.canonical.bind(py).as_any(), value.as_any()])?;
                scan.pairs.push(pair.into_any());
            }
        }
        Ok(Some(scan))
    }
}

#[pymethods]
impl ForwardedRewriter {
    /// `names`: the lower-case header names the middleware reads, `b"host"` among them; `cache`: the
    /// dict of resolved rewrites (see the class); `peer_key` and `original_key`: the scope keys of
    /// the real peer and of the original values.
    #[new]
    fn new(
        names: Vec<Bound<'_, PyBytes>>,
        cache: Bound<'_, PyDict>,
        peer_key: Bound<'_, PyString>,
        original_key: Bound<'_, PyString>,
    ) -> Self {
        let names = names
            .into_iter()
            .map(|name| Name {
                lower: name.as_bytes().to_ascii_lowercase(),
                host: name.as_bytes().eq_ignore_ascii_case(b"host"),
                canonical: name.unbind(),
            })
            .collect();
        ForwardedRewriter {
            names,
            cache: cache.unbind(),
            peer_key: peer_key.unbind(),
            original_key: original_key.unbind(),
        }
    }

    /// Rewrite a trusted peer's `http` or `websocket` scope from the cache; true when the request is
    /// done (rewritten, or without forwarded headers), false when the scope is untouched and the
    /// Python side must take it.
    fn rewrite(&self, scope: &Bound<'_, PyDict>, client: &Bound<'_, PyAny>) -> PyResult<bool> {
        let py = scope.py();
        let Some(headers) = scope.get_item(intern!(py, "headers"))? else {
            return Ok(false);
        };
        let Ok(headers) = headers.cast_into_exact::<PyList>() else {
            return Ok(false);
        };
        let Some(scan) = self.scan(&headers)? else {
            return Ok(false);
        };
        if scan.pairs.is_empty() {
            return Ok(true);
        }
        let (Some((host_index, host_value)), 1) = (scan.host, scan.host_lines) else {
            return Ok(false);
        };
        let Some(scope_type) = scope.get_item(intern!(py, "type"))? else {
            return Ok(false);
        };
        let scheme = scope.get_item(intern!(py, "scheme"))?;
        let none = py.None().into_bound(py);
        let key = PyTuple::new(
            py,
            [
                scope_type,
                scheme.clone().unwrap_or_else(|| none.clone()),
                host_value.into_any(),
                PyTuple::new(py, scan.pairs)?.into_any(),
                none.clone(),
            ],
        )?;
        let Some(entry) = self.cache.bind(py).get_item(&key)? else {
            return Ok(false);
        };
        if entry.is_none() {
            return Ok(true);
        }
        let Ok(entry) = entry.cast_into_exact::<PyTuple>() else {
            return Ok(false);
        };
        if entry.len() != 4 {
            return Ok(false);
        }
        let Ok(updates) = entry.get_item(0)?.cast_into_exact::<PyDict>() else {
            return Ok(false);
        };
        let host_line = entry.get_item(1)?;
        let prefix = entry.get_item(2)?;
        let prefix = if prefix.is_none() {
            None
        } else {
            let Ok(prefix) = prefix.cast_into_exact::<PyTuple>() else {
                return Ok(false);
            };
            let Ok((text, encoded)) = prefix.extract::<(Bound<'_, PyString>, Bound<'_, PyBytes>)>()
            else {
                return Ok(false);
            };
            Some((text, encoded))
        };
        let write = Write {
            headers,
            host_index,
            scheme,
            updates,
            host_line,
            prefix,
            original_host: entry.get_item(3)?,
        };
        self.write(scope, client, write)?;
        Ok(true)
    }

    fn __repr__(&self) -> String {
        format!("<ForwardedRewriter: {} header names>", self.names.len())
    }
}

/// A known rewrite of one request, read and checked: writing it cannot stop half-way on a bad entry.
struct Write<'py> {
    headers: Bound<'py, PyList>,
    host_index: usize,
    scheme: Option<Bound<'py, PyAny>>,
    updates: Bound<'py, PyDict>,
    host_line: Bound<'py, PyAny>,
    prefix: Option<(Bound<'py, PyString>, Bound<'py, PyBytes>)>,
    original_host: Bound<'py, PyAny>,
}

impl ForwardedRewriter {
    /// Write `write` into `scope`, in the order and with the values of the Python side's `_apply`.
    fn write<'py>(
        &self,
        scope: &Bound<'py, PyDict>,
        client: &Bound<'py, PyAny>,
        write: Write<'py>,
    ) -> PyResult<()> {
        let py = scope.py();
        let none = py.None().into_bound(py);
        let peer_key = self.peer_key.bind(py);
        if !scope.contains(peer_key)? {
            scope.set_item(peer_key, client)?;
        }
        let original = PyDict::new(py);
        original.set_item(intern!(py, "client"), client)?;
        original.set_item(
            intern!(py, "scheme"),
            write.scheme.unwrap_or_else(|| none.clone()),
        )?;
        let server = scope.get_item(intern!(py, "server"))?;
        original.set_item(
            intern!(py, "server"),
            server.unwrap_or_else(|| none.clone()),
        )?;
        original.set_item(intern!(py, "host"), write.original_host)?;
        let root_path = match scope.get_item(intern!(py, "root_path"))? {
            Some(root_path) => root_path,
            None => PyString::new(py, "").into_any(),
        };
        original.set_item(intern!(py, "root_path"), root_path)?;
        let path = scope.get_item(intern!(py, "path"))?;
        original.set_item(intern!(py, "path"), path.unwrap_or(none))?;
        scope.set_item(self.original_key.bind(py), original)?;
        for (name, value) in write.updates.iter() {
            scope.set_item(name, value)?;
        }
        if !write.host_line.is_none() {
            let rewritten = write.headers.get_slice(0, write.headers.len());
            rewritten.set_item(write.host_index, write.host_line)?;
            scope.set_item(intern!(py, "headers"), rewritten)?;
        }
        if let Some((text, encoded)) = write.prefix {
            // As `prefix + scope.get(key, "")` in Python: a value that is not a str raises the same TypeError.
            for key in [intern!(py, "root_path"), intern!(py, "path")] {
                let current = match scope.get_item(key)? {
                    Some(current) => current,
                    None => PyString::new(py, "").into_any(),
                };
                scope.set_item(key, text.add(current)?)?;
            }
            if let Some(raw_path) = scope.get_item(intern!(py, "raw_path"))? {
                if let Ok(raw_path) = raw_path.cast::<PyBytes>() {
                    let joined = [encoded.as_bytes(), raw_path.as_bytes()].concat();
                    scope.set_item(intern!(py, "raw_path"), PyBytes::new(py, &joined))?;
                }
            }
        }
        Ok(())
    }
}
