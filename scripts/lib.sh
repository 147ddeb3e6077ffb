# Shared helpers for the project's scripts. Source it; don't run it.

# need_apt PKG...: install the Debian packages that are missing. As root this installs them;
# otherwise it prints the exact command and fails, so nothing is left half-set-up.
need_apt() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "Missing packages. Install them with:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        return 1
    fi
    echo "==> apt-get install ${missing[*]}"
    if [ -z "${CACBRIDGE_APT_UPDATED:-}" ]; then
        apt-get update -qq
        export CACBRIDGE_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# need_rust: cargo with clippy and rustfmt.
need_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: install Rust with rustup (https://rustup.rs), then rerun." >&2
        return 1
    fi
    if command -v rustup >/dev/null 2>&1; then
        rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
        rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    fi
}

step() { printf '\n==> %s\n' "$*"; }
