# shellcheck shell=bash
# Builds the binaries with the exact command docker/Dockerfile runs (the RUN line after TAILGATE_RELEASE_BUILD),
# in a scratch path of its own, and checks that no libswift* shared library is linked (the runtime image has none).
tg_docker_build_check() {
    local command
    command=$(awk '/TAILGATE_RELEASE_BUILD/ {getline; sub(/^RUN +/, ""); print; exit}' docker/Dockerfile)
    [ -n "$command" ] || { echo "docker build check: no RUN line after TAILGATE_RELEASE_BUILD in docker/Dockerfile" >&2; return 1; }
    echo "docker build check: $command"
    eval "${command//swift build/swift build --scratch-path .build-docker}" >/dev/null
    local bin
    bin=$(swift build --scratch-path .build-docker -c release --show-bin-path)
    local libraries
    for binary in tailgate commerce-example; do
        # Into a variable first: `ldd | grep -q` under pipefail fails whenever grep stops reading early and ldd
        # dies of SIGPIPE (a clean-clone run reported "does not link libpq" for a binary that does).
        libraries=$(ldd "$bin/$binary")
        if grep -q 'libswift' <<<"$libraries"; then
            echo "docker build check: $binary links Swift runtime libraries dynamically:" >&2
            grep libswift <<<"$libraries" >&2
            return 1
        fi
        grep -Eq 'libpq\.so|librdkafka\.so' <<<"$libraries" || { echo "docker build check: $binary does not link libpq/librdkafka" >&2; return 1; }
    done
    echo "docker build check: tailgate and commerce-example link no libswift* (libpq and librdkafka only, from the runtime image)"
}
