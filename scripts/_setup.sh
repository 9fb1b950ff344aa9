# Sourced by scripts/test and scripts/demo: everything a fresh machine needs.
#   1. a virtualenv with the runner and its test tools (.venv, refreshed when pyproject.toml changes)
#   2. a Docker engine (as root on Debian: installs docker.io and starts dockerd)
#   3. the base image (pulled, or made with debootstrap when no registry answers)
#   4. the project's images (built when missing or changed, reused otherwise)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo/.venv"

setup_venv() {
    local python=${PYTHON:-python3}
    if ! command -v "$python" >/dev/null; then
        echo "setup: $python not found; install Python 3.11 or newer" >&2
        exit 1
    fi
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "setup: $python is $("$python" --version 2>&1); Python 3.11 or newer is needed" >&2
        exit 1
    fi
    if [ ! -x "$venv/bin/python" ]; then
        if ! "$python" -m venv "$venv" 2>/dev/null; then
            if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then
                apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
                "$python" -m venv "$venv"
            else
                echo "setup: '$python -m venv' failed; install your system's venv package (python3-venv)" >&2
                exit 1
            fi
        fi
    fi
    # Reinstall only when the dependencies changed.
    local stamp="$venv/.installed-from"
    local want
    want=$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        "$venv/bin/pip" install -q --upgrade pip
        "$venv/bin/pip" install -q -e "$repo[dev]"
        echo "$want" > "$stamp"
    fi
}

setup_all() {
    setup_venv
    "$venv/bin/keystone-upgrade" engine ensure
    "$venv/bin/keystone-upgrade" images build "$@"
}
