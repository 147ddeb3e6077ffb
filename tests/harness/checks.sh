# What the package tests share (sourced by package-test and first-day): TAP-like results
# counted for scripts/test's summary, the file-list picture a purge is judged by, and running a
# command as a person of this computer.
pass=0
fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }

# The summary scripts/test counts; the exit status says whether anything failed.
finish() {
    echo "# pass $pass"
    echo "# fail $fail"
    [ "$fail" -eq 0 ]
}

# Every file and directory outside the package manager's own records, with its type ("f",
# "d", "l").
snapshot() {
    find /usr /etc /opt /var/lib -xdev \
        \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/lib/ucf \) -prune -o \
        -printf '%y %p\n' 2>/dev/null | sort
}

# Whether the purge left exactly the "before" picture ($1, $2: the files of both). dpkg
# removes the empty directories a package listed even when they were there before it (an empty
# /etc/opt, say): those may go; no file may.
purge_left_nothing() {
    local left gone
    left=$(comm -13 "$1" "$2")
    gone=$(comm -23 "$1" "$2" | grep -v '^d ' || true)
    if [ -z "$left" ] && [ -z "$gone" ]; then
        ok "purge leaves no file behind (and takes nothing else)"
    else
        not_ok "purge leaves no file behind: left: ${left:-none}; gone: ${gone:-none}"
    fi
}

# Run a command as the person $PERSON (home $PERSON_HOME), with their own rights and a clean
# environment.
as_person() {
    setpriv --reuid="$PERSON" --regid="$PERSON" --init-groups \
        env -i HOME="$PERSON_HOME" PATH=/usr/bin:/bin "$@"
}

# The modules the person's Chrome database lists.
person_modules() { as_person modutil -dbdir "sql:$PERSON_HOME/.pki/nssdb" -list 2>/dev/null; }

# Every file and directory in the person's home, relative to it, with its type.
home_files() { find "$PERSON_HOME" -mindepth 1 -printf '%y %P\n' | sort; }

# The module names in a `modutil -list` listing (stdin), one a line.
module_names() { sed -n 's/^ *[0-9][0-9]*\. *//p'; }

# Whether the person's home after the purge ($2) still has everything it had before the
# install ($1), and of what is new nothing of CAC Bridge's (a name with "cacbridge" in it: its
# state, cache, logs, manifests and module lists all are) but the paths named ($3...). The
# rest of what is new is the browsers' own (profiles live elsewhere, yet they make caches,
# crash-report settings and ~/Downloads): listed, not judged.
home_left_alone() {
    local before=$1 after=$2; shift 2
    local gone new ours left=""
    gone=$(comm -23 "$before" "$after")
    new=$(comm -13 "$before" "$after")
    ours=$(grep -i cacbridge <<<"$new" || true)
    for expected in "$@"; do ours=$(grep -v -x "[df] $expected" <<<"$ours" || true); done
    left=$ours
    echo "new in the home, the browsers' own: $(grep -iv cacbridge <<<"$new" | tr '\n' ' ')"
    if [ -z "$gone" ] && [ -z "$left" ]; then
        ok "the person's home: all they had is there, and nothing of CAC Bridge's but: $*"
    else
        not_ok "the person's home after the purge: gone: ${gone:-none}; CAC Bridge's left: ${left:-none}"
    fi
}
