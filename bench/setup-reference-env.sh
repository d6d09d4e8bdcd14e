#!/usr/bin/env bash
# Create the environment that holds the *reference* library (c2casgiutils 0.14.0 from PyPI) for
# bench/bench_headers.py. It is never a dependency of the workspace: it lives in its own venv
# (default: <repo>/.bench-venv, ignored by git; override with BENCH_REFERENCE_VENV).
#
# Usage: bench/setup-reference-env.sh            # creates/updates the venv
#        BENCH_REFERENCE_VENV=/tmp/ref bench/setup-reference-env.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${BENCH_REFERENCE_VENV:-${here}/../.bench-venv}"

uv venv --python 3.11 "${venv}"
# c2casgiutils' ArmorHeaderMiddleware is a Starlette BaseHTTPMiddleware and its package imports
# FastAPI, Jinja2, pydantic-settings... at import time: install what `import c2casgiutils.headers` needs.
uv pip install --python "${venv}/bin/python" "c2casgiutils==0.14.0" "fastapi" "jinja2" "starlette"
"${venv}/bin/python" -c "import c2casgiutils.headers as h; print('reference ready:', h.__name__)"
echo "reference environment: ${venv}"
