#!/usr/bin/env bash
# Create the benchmark environment of bench/bench_headers.py: the *reference* library
# (c2casgiutils 0.14.0 from PyPI) next to this checkout's c2c-headers (editable, so the bench always
# measures the current source) and, when it builds, c2c-headers-native. All stacks then run in one
# process, interleaved, so every ratio comes from one run.
#
# The reference is never a dependency of the workspace: it lives only in this venv
# (default: <repo>/.bench-venv, ignored by git; override with BENCH_REFERENCE_VENV).
#
# Usage: bench/setup-reference-env.sh               # reference + c2c-headers (+ native if it builds)
#        BENCH_NATIVE=0 bench/setup-reference-env.sh  # skip building the native engine
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/.." && pwd)"
venv="${BENCH_REFERENCE_VENV:-${repo}/.bench-venv}"

uv venv --allow-existing --python 3.11 "${venv}"
# c2casgiutils' headers module imports Starlette, FastAPI, pydantic(-settings)... at import time;
# its own dependency metadata pulls them in. FastAPI and Jinja2 are imported but are not required
# dependencies of c2casgiutils 0.14.0 (FastAPI is only in its extras, Jinja2 nowhere), so they are
# listed explicitly.
# uvicorn with httptools: bench_load.py serves the reference with it (h11 refuses its CSP, which ends with a space).
uv pip install --python "${venv}/bin/python" "c2casgiutils==0.14.0" fastapi jinja2 "uvicorn[standard]"
uv pip install --python "${venv}/bin/python" -e "${repo}/packages/c2c-headers"
if [[ "${BENCH_NATIVE:-1}" != "0" && -f "${repo}/packages/c2c-headers-native/pyproject.toml" ]]; then
    if ! uv pip install --python "${venv}/bin/python" "${repo}/packages/c2c-headers-native"; then
        echo "warning: c2c-headers-native did not build; the bench will measure the python engine only" >&2
    fi
fi
"${venv}/bin/python" -c "import c2casgiutils.headers, c2c_headers; print('reference and c2c-headers ready')"
echo "benchmark environment: ${venv}"
echo "run: ${venv}/bin/python ${repo}/bench/bench_headers.py"
