# syntax=docker/dockerfile:1
# The vmclock operator image: `vmclock run` in a venv of hash-pinned dependencies, as a non-root user, with
# nothing written at run time (works with readOnlyRootFilesystem). Build: docker build -t vmclock-operator .
# tests/deploy/test_image_steps.py lints this file and replays its install steps in a fresh virtualenv.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    WHEELS=/wheels \
    BUILD_VENV=/opt/build \
    VIRTUAL_ENV=/opt/vmclock
WORKDIR /src
# The build context holds no simulator (.dockerignore), so the wheel has none: the image serves no ZStack.
COPY pyproject.toml requirements-build.txt requirements-image.txt README.md ./
COPY operator/ operator/
# Every file pip downloads must match a sha256 that `make lock` pinned (--require-hashes). Our wheel is built
# by the pinned build backend in a throw-away venv, without build isolation (an isolated build would fetch
# setuptools unpinned and unhashed).
RUN python -m venv "${BUILD_VENV}" \
    && "${BUILD_VENV}/bin/pip" install --require-hashes --requirement requirements-build.txt \
    && "${BUILD_VENV}/bin/pip" wheel --no-deps --no-build-isolation --wheel-dir "${WHEELS}" .
# A pip-less venv: the hashed runtime closure, then our own wheel by path and without an index (no index can
# substitute another "vmclock-operator"), then a check that the closure satisfies the wheel's requirements.
RUN python -m venv --without-pip "${VIRTUAL_ENV}" \
    && pip --python "${VIRTUAL_ENV}/bin/python" install --require-hashes --requirement requirements-image.txt \
    && pip --python "${VIRTUAL_ENV}/bin/python" install --no-deps --no-index "${WHEELS}"/vmclock_operator-*.whl \
    && pip --python "${VIRTUAL_ENV}/bin/python" check

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="vmclock-operator" \
      org.opencontainers.image.description="Kubernetes operator that keeps ZStack VM RTC clock track (guest/host) as declared in VmClockPolicy resources" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# A passwd entry for the numeric user, so tools that look the user up (getpass) work outside Kubernetes too.
RUN useradd --system --no-log-init --user-group --uid 65532 --home-dir /nonexistent --shell /usr/sbin/nologin vmclock
COPY --from=builder /opt/vmclock /opt/vmclock
# Bytecode was compiled at install time; never try to write more at run time (read-only root filesystem).
ENV VIRTUAL_ENV=/opt/vmclock \
    PATH=/opt/vmclock/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
# 8080: liveness (/healthz); 9090: Prometheus metrics (/metrics).
EXPOSE 8080 9090
ENTRYPOINT ["/opt/vmclock/bin/vmclock", "run"]
CMD ["-A"]
