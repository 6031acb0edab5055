#!/bin/sh
# Builds the pdp image (Dockerfile at the repository root) with the first builder that works
# here: docker with a reachable engine, else podman, else buildah. `make image` runs this.
#
#   IMAGE=pdp:0.1.0           the tag (default pdp:<version from pyproject.toml>)
#   BUILDER=podman            skip the detection
#   BUILD_FLAGS="--pull=never --build-arg PYTHON_IMAGE=..."   passed to the builder as they are
#
# Exit 0 built; 3 no builder works here (each one tried is named, with why); else the builder's.
set -eu
cd "$(dirname "$0")/../.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)
IMAGE=${IMAGE:-pdp:$version}
BUILDER=${BUILDER:-}
BUILD_FLAGS=${BUILD_FLAGS:-}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
source=$(git config --get remote.origin.url 2>/dev/null || echo unknown)

if [ -z "$BUILDER" ]; then
    tried=""
    if ! command -v docker >/dev/null 2>&1; then
        tried="$tried; docker: not installed"
    elif ! why=$(docker info 2>&1 >/dev/null); then
        tried="$tried; docker: no engine ($(printf '%s' "$why" | tail -n 1))"
    else
        BUILDER=docker
    fi
    if [ -z "$BUILDER" ]; then
        if ! command -v podman >/dev/null 2>&1; then
            tried="$tried; podman: not installed"
        elif ! why=$(podman info 2>&1 >/dev/null); then
            tried="$tried; podman: does not work here ($(printf '%s' "$why" | tail -n 1))"
        else
            BUILDER=podman
        fi
    fi
    if [ -z "$BUILDER" ]; then
        if command -v buildah >/dev/null 2>&1; then
            BUILDER=buildah
        else
            tried="$tried; buildah: not installed"
        fi
    fi
    if [ -z "$BUILDER" ]; then
        echo "image: no container builder works here${tried}" >&2
        exit 3
    fi
fi

echo "image: building $IMAGE with $BUILDER" >&2
# shellcheck disable=SC2086  # BUILD_FLAGS is a list of flags on purpose
exec "$BUILDER" build --file Dockerfile --tag "$IMAGE" \
    --build-arg VERSION="$version" --build-arg REVISION="$revision" --build-arg SOURCE="$source" \
    $BUILD_FLAGS .
