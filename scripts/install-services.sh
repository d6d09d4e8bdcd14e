#!/usr/bin/env bash
# Install the servers the test suite starts for real (see packages/c2c-testing/README.md):
# redis-server, redis-sentinel, a PostgreSQL server (initdb + postgres), and Chromium for the
# browser test of the /c2c page (driven by Playwright; Playwright's own browser downloads are not
# reachable here, Debian's chromium is).
#
# Idempotent and quiet when everything is already there. As root it installs the missing Debian
# packages; as another user it prints the command to run and exits with status 1.
set -euo pipefail

PACKAGES=(redis-server redis-sentinel postgresql chromium redis-tools fonts-dejavu-core nginx wrk shellcheck)

have() {
    command -v "$1" >/dev/null 2>&1
}

# The PostgreSQL server binaries live in /usr/lib/postgresql/<version>/bin on Debian, not in PATH;
# psql is the client the fixtures use to create roles and databases.
have_postgresql() {
    local dir
    if have initdb && have postgres && have psql; then
        return 0
    fi
    for dir in /usr/lib/postgresql/*/bin; do
        if [[ -x "$dir/initdb" && -x "$dir/postgres" && -x "$dir/psql" ]]; then
            return 0
        fi
    done
    return 1
}

missing=()
have redis-server || missing+=(redis-server)
have redis-sentinel || missing+=(redis-sentinel)
have_postgresql || missing+=("postgresql (initdb, postgres, psql)")
have chromium || missing+=(chromium)
# The browser screenshot is compared with a committed one: the same font everywhere.
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
have redis-cli || missing+=("redis-tools (redis-cli)")
# nginx: the production-like end-to-end test (TLS in front of three replicas); wrk: bench/bench_load.py;
# shellcheck: actionlint checks the workflows' run: scripts with it.
[[ -x /usr/sbin/nginx ]] || have nginx || missing+=(nginx)
have wrk || missing+=(wrk)
have shellcheck || missing+=(shellcheck)

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    {
        echo "install-services.sh: missing: ${missing[*]}"
        echo "Run as root:"
        echo "    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${PACKAGES[*]}"
        echo "or: sudo bash scripts/install-services.sh"
    } >&2
    exit 1
fi

echo "install-services.sh: installing ${PACKAGES[*]} (missing: ${missing[*]})" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null

# The Debian package starts a system-wide cluster and redis-server on their default ports; the test
# fixtures start their own servers on free ports and never use those, so stopping them is not needed.
if ! have redis-server || ! have redis-sentinel || ! have_postgresql || ! have chromium || ! have redis-cli || ! have wrk || ! have shellcheck \
    || [[ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]; then
    echo "install-services.sh: installation finished but some binaries are still missing" >&2
    exit 1
fi
