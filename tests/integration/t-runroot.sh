# A run root or state directory that another user made, or may write, or
# that is a symlink, is refused (exit 4, a message naming it, nothing
# written there); qctl gc removes only run-XXXXXX directories directly
# under the run root, and only by records that are root's own files.
. "$(dirname "$0")/lib.sh"

# A throwaway local user: the "attacker" who made the directory first.
EVIL="qctl-it-$$"
useradd --system --no-create-home --home-dir /nonexistent \
	--shell /usr/sbin/nologin "$EVIL"
EVIL_UID=$(id -u "$EVIL")
# set +e: the trap must reach cleanup_test whatever userdel says
trap 'rc_=$?; set +e; userdel "$EVIL" 2>/dev/null; (exit $rc_); cleanup_test' EXIT

cat >"$T/r.yaml" <<'R'
steps: [{name: a, run: "true"}]
R

# refused DESC PATTERN DIR [VAR=VALUE...]: qctl run exits 4 with a message
# matching PATTERN and leaves DIR empty.
refused() {
	local desc=$1 pat=$2 dir=$3 rc=0
	shift 3
	env "$@" "$QCTL" run --json "$T/r.yaml" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = 4 ] || fail "$desc: exit $rc, expected 4: $(tail -5 "$T/err")"
	grep -q -- "$pat" "$T/err" ||
		fail "$desc: no message matching '$pat': $(cat "$T/err")"
	expect_eq "$(json "$T/out" 'r["status"]')" error "$desc: status"
	json "$T/out" 'r["reason"]' | grep -q -- "$pat" ||
		fail "$desc: reason: $(json "$T/out" 'r["reason"]')"
	[ -z "$(ls -A "$dir")" ] || fail "$desc: wrote into $dir: $(ls -A "$dir")"
	echo "ok: $desc"
}

# 1. the attack: another user's run root, mode 0777
mkdir "$T/r1"
chown "$EVIL:" "$T/r1"
chmod 0777 "$T/r1"
refused "run root of another user, 0777" "run root $T/r1 is owned by uid $EVIL_UID" \
	"$T/r1" QCTL_RUN_ROOT="$T/r1"
# the same user's, 0700: still not root's
chmod 0700 "$T/r1"
refused "run root of another user, 0700" "owned by uid $EVIL_UID" \
	"$T/r1" QCTL_RUN_ROOT="$T/r1"

# 2. root's own, but writable by others
mkdir -m 0777 "$T/r2"
refused "run root 0777" "run root $T/r2 is writable by group or other (mode 0777)" \
	"$T/r2" QCTL_RUN_ROOT="$T/r2"

# 3. a symlink to a directory (root's own, even)
mkdir -m 0700 "$T/real"
ln -s "$T/real" "$T/r3"
refused "run root symlink" "run root $T/r3 is a symlink" \
	"$T/real" QCTL_RUN_ROOT="$T/r3"

# 4. a run root under a directory another user may write (not sticky)
mkdir -m 0777 "$T/open"
refused "run root under a 0777 directory" "$T/open is writable by group or other and not sticky" \
	"$T/open" QCTL_RUN_ROOT="$T/open/runs"

# 5. the state directory: 0777, then another user's; no run directory is
# made either
mkdir -m 0777 "$T/s1"
refused "state dir 0777" "state directory $T/s1 is writable by group or other" \
	"$T/s1" QCTL_STATE_DIR="$T/s1"
[ -z "$(ls -A "$QCTL_RUN_ROOT" 2>/dev/null)" ] || fail "run directory made: $(ls "$QCTL_RUN_ROOT")"
mkdir -m 0700 "$T/s2"
chown "$EVIL:" "$T/s2"
refused "state dir of another user" "state directory $T/s2 is owned by uid $EVIL_UID" \
	"$T/s2" QCTL_STATE_DIR="$T/s2"
rc=0
QCTL_STATE_DIR="$T/s2" "$QCTL" gc >"$T/gc" 2>&1 || rc=$?
expect_eq "$rc" 4 "gc with a state dir of another user"
grep -q "state directory $T/s2 is owned by uid $EVIL_UID" "$T/gc" || fail "gc: $(cat "$T/gc")"

# 6. qctl serve refuses them at start, before it listens
rc=0
timeout 30 "$QCTL" serve --socket "$T/sock" --run-root "$T/r2" --accel tcg \
	>"$T/serve" 2>&1 || rc=$?
expect_eq "$rc" 4 "serve with a 0777 run root"
grep -q "run root $T/r2 is writable" "$T/serve" || fail "serve: $(cat "$T/serve")"
[ ! -e "$T/sock" ] || fail "serve listened"
echo "ok: serve refuses"

# 7. gc and crafted records of dead managers (pid 1 is no manager)
mkdir -p -m 0700 "$QCTL_STATE_DIR" "$QCTL_RUN_ROOT"
mkdir -p "$T/victim" "$T/run-Victim" "$T/elsewhere/run-Elsewh" "$T/victim2"
touch "$T/victim/file" "$T/run-Victim/file" "$T/elsewhere/run-Elsewh/file" "$T/victim2/file"
# the lookups of run-x/.. need run-x to exist
mkdir -m 0700 "$QCTL_RUN_ROOT/run-x" "$QCTL_RUN_ROOT/run-AbCdEf" \
	"$QCTL_RUN_ROOT/run-Legit1" "$QCTL_RUN_ROOT/run-Sym123" "$QCTL_RUN_ROOT/run-Own123"
ln -s "$T/victim2" "$QCTL_RUN_ROOT/run-Link12"
record() { # FILE RUN_DIR
	printf '{"id": "x", "manager": {"pid": 1, "start": 1}, "run_dir": "%s"}\n' "$2" >"$1"
}
record "$QCTL_STATE_DIR/a.json" "$QCTL_RUN_ROOT/run-x/../../victim"
record "$QCTL_STATE_DIR/b.json" "$QCTL_RUN_ROOT/run-AbCdEf/../../run-Victim"
record "$QCTL_STATE_DIR/c.json" "$T/elsewhere/run-Elsewh"
record "$QCTL_STATE_DIR/f.json" "$QCTL_RUN_ROOT/run-Legit1"
record "$QCTL_STATE_DIR/g.json" "$QCTL_RUN_ROOT/run-Link12"
# a build of another run root: left by this gc, removed by one told of it
mkdir -p -m 0700 "$T/other/run-Other1"
record "$QCTL_STATE_DIR/h.json" "$T/other/run-Other1"
# a record that is a symlink, and one that is not root's
record "$T/planted.json" "$QCTL_RUN_ROOT/run-Sym123"
ln -s "$T/planted.json" "$QCTL_STATE_DIR/d.json"
record "$QCTL_STATE_DIR/e.json" "$QCTL_RUN_ROOT/run-Own123"
chown "$EVIL:" "$QCTL_STATE_DIR/e.json"
rc=0
"$QCTL" gc >"$T/gc" 2>&1 || rc=$?
cat "$T/gc"
expect_eq "$rc" 0 "gc exit"
for f in "$T/victim/file" "$T/run-Victim/file" "$T/elsewhere/run-Elsewh/file" \
	"$T/victim2/file" "$QCTL_RUN_ROOT/run-Sym123" "$QCTL_RUN_ROOT/run-Own123"; do
	[ -e "$f" ] || fail "gc removed $f"
done
[ ! -e "$QCTL_RUN_ROOT/run-Legit1" ] || fail "gc left the legitimate run-Legit1"
grep -q "removed run directory $QCTL_RUN_ROOT/run-Legit1" "$T/gc" || fail "gc did not report run-Legit1"
grep -q "not a run-XXXXXX directory directly under the run root" "$T/gc" ||
	fail "gc did not say why it left a run directory"
grep -q "d.json.*not a regular file" "$T/gc" || fail "gc did not refuse the symlinked record"
grep -q "e.json.*owned by uid $EVIL_UID" "$T/gc" || fail "gc did not refuse another user's record"
# records whose run directory was left stay (and are reported again)
for r in a b c d e g h; do
	[ -e "$QCTL_STATE_DIR/$r.json" ] || fail "record $r.json dropped"
done
[ ! -e "$QCTL_STATE_DIR/f.json" ] || fail "record f.json left after its run directory went"
grep -q "1 dead build reaped" "$T/gc" || fail "gc count"
rc=0
"$QCTL" gc --run-root "$T/other" >"$T/gc" 2>&1 || rc=$?
cat "$T/gc"
expect_eq "$rc" 0 "gc --run-root exit"
[ ! -e "$T/other/run-Other1" ] || fail "gc --run-root left run-Other1"
[ ! -e "$QCTL_STATE_DIR/h.json" ] || fail "gc --run-root left h.json"
[ -e "$T/victim/file" ] || fail "gc --run-root removed the victim"
echo ok
