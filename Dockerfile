# pdp as a container image: `make image` (docker, podman or buildah). docs/deploy.md explains it.
#
#   bundle:   mount it at /etc/pdp/bundle (a ConfigMap, read-only); pdp hot-reloads it
#   ports:    9191 gRPC (pdp.v1, Envoy ext_authz, grpc.health.v1), 9090 metrics when --metrics
#   user:     uid/gid 10001, no home, nothing to write: runs with a read-only root filesystem.
#             Writable paths it may need, as volumes: /tmp (TMPDIR: prometheus' multiprocess
#             files with --workers and no PROMETHEUS_MULTIPROC_DIR), the Unix socket's folder
#             (/run/pdp by convention), PROMETHEUS_MULTIPROC_DIR when set.
#   stopping: SIGTERM makes pdp drain in-flight calls for --grace seconds (default 10) and exit
#             0; give it longer than that: `docker stop -t 15`, Kubernetes
#             terminationGracePeriodSeconds = preStop pause + --grace + margin (deploy/kubernetes:
#             5 + 10 + 5 = 20).
#
# The base is pinned by exact version tag and digest. The digest is the one public projects
# pin for this tag; it could not be checked against the registry from the machine this was
# written on (no registry access): `docker buildx imagetools inspect python:3.12.12-slim-bookworm`
# shows the current one. A wrong digest fails the build; it never substitutes another image.
ARG PYTHON_IMAGE=docker.io/library/python:3.12.12-slim-bookworm@sha256:593bd06efe90efa80dc4eee3948be7c0fde4134606dd40d8dd8dbcade98e669c

# --- build: a virtualenv with pdp and its pinned dependencies -------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/pdp
WORKDIR /src
# Dependencies first, from the project's own metadata, so a source change reuses this layer.
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > requirements.txt \
 && /opt/pdp/bin/pip install --only-binary=:all: -r requirements.txt
COPY README.md ./
COPY pdp ./pdp
COPY deploy/image/pdp_probe.py /opt/pdp/bin/pdp-probe
# Bytecode is compiled here, once, checked by hash rather than by file time (an image is
# immutable): the read-only runtime never recompiles or writes any.
RUN /opt/pdp/bin/pip install --no-deps . \
 && /opt/pdp/bin/python -m compileall -q -f --invalidation-mode unchecked-hash /opt/pdp/lib \
 && chmod 0755 /opt/pdp/bin/pdp-probe \
 && /opt/pdp/bin/pip uninstall --yes pip \
 && /opt/pdp/bin/pdp --version

# --- runtime: the virtualenv on a clean base, no build tools, no caches, not root ------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="pdp" \
      org.opencontainers.image.description="Policy decision point for the Cedar policy language: gRPC, Envoy ext_authz, policy tests" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.12.12-slim-bookworm"
RUN groupadd --gid 10001 pdp \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin pdp \
 && mkdir -p /etc/pdp/bundle /run/pdp \
 && chown 10001:10001 /run/pdp
COPY --from=build /opt/pdp /opt/pdp
ENV PATH=/opt/pdp/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp
USER 10001:10001
WORKDIR /
EXPOSE 9191 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["pdp", "serve"]
CMD ["/etc/pdp/bundle", "--listen", "0.0.0.0:9191"]
