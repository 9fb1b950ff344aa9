# The runner's own image: keystone-upgrade in a virtualenv on Debian bookworm's Python 3.11.
#
# `keystone-upgrade images build --runner` builds it from the repository root with only this
# Dockerfile, pyproject.toml and runner/ in the context, plus the host's CA bundle as
# build-ca/ca-bundle.crt so that pip trusts the same CAs as the host. Only the build stage
# sees the bundle (PIP_CERT); the final image copies the virtualenv, not the bundle, and
# holds no build tools.
#
# By hand (build-ca/ must exist; the bundle in it is optional, Debian's is used without it):
#   mkdir -p build-ca && cp /etc/ssl/certs/ca-certificates.crt build-ca/ca-bundle.crt
#   docker build --network host -t keystone-upgrade/runner:0.1.0 .
#
# It runs as root: it talks to the Docker engine through its socket, which only root and
# the socket's group may use (README: "Running from the runner's image").
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY build-ca/ /build/ca/
COPY pyproject.toml /build/src/
# The dependencies first, from pyproject.toml alone: a change to the code then rebuilds only
# the last layer instead of downloading matplotlib and the rest again. PIP_CERT (not only
# --cert) so that pip's build-isolation subprocesses trust the bundle too.
RUN set -eu; \
    if [ -s /build/ca/ca-bundle.crt ]; then export PIP_CERT=/build/ca/ca-bundle.crt; \
    else export PIP_CERT=/etc/ssl/certs/ca-certificates.crt; fi; \
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1; \
    python3 -m venv /opt/keystone-upgrade; \
    python3 -c 'import tomllib, sys; print("\n".join(tomllib.load(sys.stdin.buffer)["project"]["dependencies"]))' \
      < /build/src/pyproject.toml > /build/requirements.txt; \
    /opt/keystone-upgrade/bin/pip install -r /build/requirements.txt
COPY runner/ /build/src/runner/
# README.md stays out of the context (a change to the docs is no reason to rebuild); an empty
# one spares setuptools the warning about the file pyproject.toml names.
RUN set -eu; \
    if [ -s /build/ca/ca-bundle.crt ]; then export PIP_CERT=/build/ca/ca-bundle.crt; \
    else export PIP_CERT=/etc/ssl/certs/ca-certificates.crt; fi; \
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1; \
    touch /build/src/README.md; \
    /opt/keystone-upgrade/bin/pip install /build/src; \
    /opt/keystone-upgrade/bin/pip check; \
    /opt/keystone-upgrade/bin/pip uninstall -q -y pip setuptools; \
    /opt/keystone-upgrade/bin/keystone-upgrade --help > /dev/null

FROM ${BASE_IMAGE}
# ca-certificates: Debian's CAs, for [database.tls] without a ca_file and https health URLs
# (not the host's bundle). openssh-client: nodes whose engine is ssh://user@host.
# A debootstrapped base keeps apt's downloads and caches unless told (100 MB here).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 ca-certificates openssh-client \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY --from=build /opt/keystone-upgrade /opt/keystone-upgrade
ENV PATH=/opt/keystone-upgrade/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib
LABEL io.keystone-upgrade.component="runner"
ENTRYPOINT ["keystone-upgrade"]
CMD ["--help"]
