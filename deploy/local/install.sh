#!/usr/bin/env bash
# Install what a local Hydra stack needs on this machine (idempotent, quiet when done).
#
#   * redis-server            (apt, only when missing)
#   * FerretDB v1.24.2        (built with Go; skipped when HYDRA_MONGO_URL is set or mongod is on PATH)
#   * .venv                   (python3 -m venv; pip install -r requirements-dev.txt and -e . when they changed)
#   * bubblewrap, libseccomp2 (apt, only when missing: the sandbox commands run in, and its system-call
#                             filter; hydra.execution.sandbox)
#   * redis-sentinel          (apt, only when missing: the Sentinel failover test, tests/integration/test_sentinel.py)
#   * iproute2, iptables      (apt, only when missing, as root: `make chaos`'s network namespaces, tc netem, rules)
#   * the OS user hydra-job   (root only: the unprivileged user commands run as; HYDRA_RUN_AS names another)
#   * prometheus              (apt, only when promtool is missing: tests/unit/test_alert_rules.py checks
#                             deploy/prometheus/hydra-alerts.yml with `promtool check rules` and `promtool test rules`;
#                             its service is not started)
#   * chromium, chromium-driver, fonts-dejavu-core (apt, only when missing: the web console's browser tests,
#                             tests/browser, and the font of its status symbols;
#                             HYDRA_SKIP_BROWSER=1 skips them on a machine that never runs the tests)
#
# Called by `make install`, which `make up`, `make test` and `make bench` depend on.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

FERRETDB_VERSION="v1.24.2"
FERRETDB_MODULE="github.com/FerretDB/FerretDB"
VENV="$REPO/.venv"
STAMP="$VENV/.hydra-installed"

say() { echo "install: $*"; }
die() { echo "install: error: $*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing"
    SUDO=(sudo)
fi

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
    if [ "$APT_UPDATED" -eq 0 ]; then
        "${SUDO[@]}" apt-get update -qq
        APT_UPDATED=1
    fi
    # Debian packages start their service from postinst; a policy-rc.d answering 101
    # ("action forbidden") stops that. We run our own instance on our own port.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod +x "$policy"
        created_policy=1
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null || rc=$?
    if [ "$created_policy" -eq 1 ]; then "${SUDO[@]}" rm -f "$policy"; fi
    return "$rc"
}

# --- redis ----------------------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
    say "installing redis-server (apt)"
    apt_install redis-server
    # On a systemd machine the package enables a system redis on 6379; Hydra runs its own.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        "${SUDO[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
    fi
fi

# --- high availability and network faults: redis-sentinel, ip/tc, iptables ---------------------
if ! command -v redis-sentinel >/dev/null 2>&1; then
    say "installing redis-sentinel (apt)"
    apt_install redis-sentinel || say "warning: no redis-sentinel; the Sentinel failover test is skipped"
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        "${SUDO[@]}" systemctl disable --now redis-sentinel >/dev/null 2>&1 || true
    fi
fi
if [ "$(uname -s)" = "Linux" ] && [ "$(id -u)" -eq 0 ]; then
    missing=()
    command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 || missing+=(iproute2)
    command -v iptables >/dev/null 2>&1 || missing+=(iptables)
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]} (apt)"
        apt_install "${missing[@]}" || say "warning: no ${missing[*]}; make chaos cannot run"
    fi
fi

# --- isolation of commands: bubblewrap, and the unprivileged user jobs run as -------------------
if [ "$(uname -s)" = "Linux" ]; then
    if ! command -v bwrap >/dev/null 2>&1; then
        say "installing bubblewrap (apt)"
        apt_install bubblewrap || say "warning: no bubblewrap; commands run without a sandbox (HYDRA_SANDBOX=auto)"
    fi
    case "$(/sbin/ldconfig -p 2>/dev/null || true)" in
        *libseccomp.so.2*) ;;
        *)  say "installing libseccomp2 (apt)"
            apt_install libseccomp2 || say "warning: no libseccomp; sandboxed commands may create user namespaces" ;;
    esac
    JOB_USER="${HYDRA_RUN_AS:-hydra-job}"
    if [ "$(id -u)" -eq 0 ] && ! id "$JOB_USER" >/dev/null 2>&1; then
        say "creating the OS user $JOB_USER (commands run as it)"
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$JOB_USER" \
            || id "$JOB_USER" >/dev/null 2>&1 || die "could not create the user $JOB_USER"
    fi
fi

# --- promtool, for the alert rules' tests (Debian ships it in the prometheus package) ----------
if [ "$(uname -s)" = "Linux" ] && ! command -v promtool >/dev/null 2>&1; then
    say "installing prometheus (apt; for promtool, tests/unit/test_alert_rules.py)"
    apt_install prometheus || die "could not install prometheus (promtool checks deploy/prometheus/hydra-alerts.yml)"
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        "${SUDO[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi

# --- headless Chromium for the console's browser tests (Debian's packages, driven by Selenium) ---
if [ "$(uname -s)" = "Linux" ] && [ "${HYDRA_SKIP_BROWSER:-0}" != "1" ]; then
    # DejaVu Sans draws the console's status symbols (api/console/present.py GLYPHS); the
    # browser tests check that an installed font has each of them.
    if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 \
        || [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
        say "installing chromium, chromium-driver and fonts-dejavu-core (apt; for tests/browser)"
        apt_install chromium chromium-driver fonts-dejavu-core \
            || die "could not install chromium, chromium-driver and fonts-dejavu-core (HYDRA_SKIP_BROWSER=1 skips them)"
    fi
fi

# --- FerretDB (MongoDB wire protocol on SQLite) ------------------------------------------
find_go() {
    if command -v go >/dev/null 2>&1; then command -v go; return 0; fi
    for g in /usr/local/go/bin/go "$HOME/go/bin/go" /usr/lib/go/bin/go; do
        if [ -x "$g" ]; then echo "$g"; return 0; fi
    done
    return 1
}

ferretdb_works() {  # $1 = binary
    [ -x "$1" ] && "$1" --version >/dev/null 2>&1
}

install_ferretdb() {
    local go gopath target
    go="$(find_go)" || die "FerretDB needs Go >= 1.24 (https://go.dev/dl/), or set HYDRA_MONGO_URL, or put mongod on PATH"
    gopath="$("$go" env GOPATH)"
    target="$gopath/bin/ferretdb"
    if ferretdb_works "$target"; then return 0; fi

    say "building FerretDB $FERRETDB_VERSION with $("$go" env GOVERSION) (first time: a few minutes)"
    "$go" install "$FERRETDB_MODULE/cmd/ferretdb@$FERRETDB_VERSION" >/dev/null 2>&1 || true
    if ferretdb_works "$target"; then return 0; fi

    # The module zip lacks the generated build/version/version.txt, so the binary panics
    # ("Invalid build/version/version.txt file content"). Build from a writable copy of
    # the module source with that file written.
    local dir tmp
    dir="$("$go" mod download -json "$FERRETDB_MODULE@$FERRETDB_VERSION" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
    [ -d "$dir" ] || die "go mod download gave no source dir for $FERRETDB_MODULE@$FERRETDB_VERSION"
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    cp -r "$dir/." "$tmp/src"
    chmod -R u+w "$tmp/src"
    printf '%s\n' "$FERRETDB_VERSION" > "$tmp/src/build/version/version.txt"
    mkdir -p "$gopath/bin"
    (cd "$tmp/src" && "$go" build -o "$target" ./cmd/ferretdb)
    rm -rf "$tmp"
    trap - EXIT
    ferretdb_works "$target" || die "built $target but '$target --version' still fails"
    say "FerretDB installed: $target"
}

if [ -n "${HYDRA_MONGO_URL:-}" ]; then
    :  # external MongoDB: nothing to install
elif command -v mongod >/dev/null 2>&1; then
    :  # a local mongod will be used
elif command -v ferretdb >/dev/null 2>&1 && ferretdb_works "$(command -v ferretdb)"; then
    :  # a working ferretdb is on PATH
else
    install_ferretdb
fi

# --- Python virtualenv -------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating .venv"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        say "installing python3-venv (apt)"
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
fi

inputs_digest() {
    local f
    for f in requirements.txt requirements-dev.txt pyproject.toml; do
        if [ -f "$f" ]; then sha256sum "$f"; else echo "absent $f"; fi
    done
}

need_pip=0
if [ ! -f "$STAMP" ]; then
    need_pip=1
else
    for f in requirements.txt requirements-dev.txt pyproject.toml; do
        if [ -f "$f" ] && [ "$f" -nt "$STAMP" ]; then need_pip=1; fi
    done
    if [ "$(inputs_digest)" != "$(cat "$STAMP")" ]; then need_pip=1; fi
fi

if [ "$need_pip" -eq 1 ]; then
    say "installing Python packages into .venv"
    PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
    "${PIP[@]}" install -r requirements-dev.txt
    if [ -f pyproject.toml ]; then
        # The distribution was called "hydra" before it became hydra-jobs: one install of the code.
        if "$VENV/bin/python" -m pip show hydra >/dev/null 2>&1; then "${PIP[@]}" uninstall -y hydra; fi
        "${PIP[@]}" install -e . --no-deps
    fi
    inputs_digest > "$STAMP"
fi
