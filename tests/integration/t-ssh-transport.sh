# The ssh transport (docs/ssh-transport.md) on the debian-ssh image: a
# passing recipe (source in, output streamed, exit codes, artifacts out,
# the guest unable to open a connection to the host side), a fetch step
# (the window opens to the proxy only and closes again), a failing one
# (exit 1), sshd killed mid-step (exit 4), the bridge's confinement and
# its end with a killed manager (gc reaps the rest), a guest showing
# another host key than the build's (exit 4, the reason names the host
# key), the recipe's transport checked against the image's (exit 2);
# nothing left: no QEMU, no bridge, no namespace (and so no nftables
# table).
# timeout: 600
. "$(dirname "$0")/lib.sh"
IMG="$QCTL_IMAGES/debian-ssh"
if [ ! -f "$IMG/image.json" ]; then
	# only a host without the package registry may excuse that
	if registry_down; then
		echo "SKIP: image debian-ssh missing and the package registry is out of reach"
		exit 77
	fi
	fail "image debian-ssh missing (make image-debian-ssh) though the registry answers"
fi

bridges_of_test() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/exe" 2>/dev/null)" = "$QCTL_BUILD/qctl-sshbridge" ] &&
			echo "${p#/proc/}"
	done
	return 0
}
nothing_left() {
	no_qemu_left
	run_dir_gone
	[ -z "$(leftover_netns)" ] || fail "namespace left: $(leftover_netns)"
	wait_for --timeout 30 --what "no qctl-sshbridge left" \
		test -z "$(bridges_of_test)"
}

mkdir -p "$T/src/sub"
printf 'hello from the host\n' >"$T/src/sub/in.txt"
printf "it's \"quoted\" \$HOME\n" >"$T/src/odd name's.txt"
# 8 MiB that does not compress: many DATA frames each way, the bridge's
# writes waiting for the guest's ssh window
head -c 8388608 /dev/urandom >"$T/src/blob"
blob_sum=$(sha256sum "$T/src/blob" | cut -d' ' -f1)
cat >"$T/pass.yaml" <<R
image: debian-ssh
source: $T/src
env: {GREETING: "it's a \"test\" \$HOME"}
limits: {boot_timeout: 120s, wall_time: 10m}
steps:
  - name: build
    run: |
      echo "in:\$(cat sub/in.txt)"
      echo "greeting:\$GREETING"
      echo "to-stderr" >&2
      echo "cwd:\$(pwd) uid:\$(id -u) ssh-env:\${SSH_CONNECTION:-none}"
      cat "odd name's.txt"
      echo "blob:\$(sha256sum blob | cut -d' ' -f1)"
      mkdir -p out && printf 'artifact-data\n' > out/a.txt && cp "odd name's.txt" out/
      cp blob out/blob
  - name: confined
    run: |
      # No fetch step: the guest may open nothing, the proxy port and
      # the host side's sshd included (dropped: the connect times out).
      timeout 5 bash -c 'exec 3<>/dev/tcp/169.254.77.1/3128' 2>/dev/null && echo LEAK-PROXY || echo "PROXY:blocked"
      timeout 5 bash -c 'exec 3<>/dev/tcp/169.254.77.1/22' 2>/dev/null && echo LEAK-22 || echo "HOST22:blocked"
      ping -c 1 -W 2 169.254.77.1 >/dev/null 2>&1 && echo LEAK-ICMP || echo "ICMP:blocked"
      exit 0
  - name: last
    run: "exit 0"
artifacts: ["out/*", "missing/*.none"]
R
run_qctl 0 --json --artifacts "$T/art" "$T/pass.yaml"
expect_eq "$(json "$T/out" 'r["status"]')" passed status
expect_eq "$(json "$T/out" '[s["exit_code"] for s in r["steps"]]')" "[0, 0, 0]" "step exit codes"
for want in "build| in:hello from the host" \
	"build| greeting:it's a \"test\" \$HOME" "build| to-stderr" \
	"build| cwd:/src uid:0 ssh-env:none" \
	"build| it's \"quoted\" \$HOME" \
	"build| blob:$blob_sum" "confined| PROXY:blocked" "confined| HOST22:blocked" "confined| ICMP:blocked"; do
	grep -qxF -- "$want" "$T/err" || { tail -40 "$T/err"; fail "missing line: $want"; }
done
! grep -q LEAK "$T/err" || fail "the guest opened a connection: $(grep LEAK "$T/err")"
grep -q 'guest up in .*: ssh 169.254.77.2:22 (SSH-2.0-OpenSSH' "$T/err" ||
	fail "HELLO did not come from the bridge"
expect_eq "$(cat "$T/art/out/a.txt")" artifact-data "artifact content"
expect_eq "$(json "$T/out" 'sorted(a["path"] for a in r["artifacts"])')" \
	'["out/a.txt", "out/blob", "out/odd name'"'"'s.txt"]' artifacts
expect_eq "$(sha256sum "$T/art/out/blob" | cut -d' ' -f1)" "$blob_sum" "blob back"
expect_eq "$(json "$T/out" '[a["sha256"] for a in r["artifacts"] if a["path"] == "out/a.txt"][0]')" \
	"$(sha256sum "$T/art/out/a.txt" | cut -d' ' -f1)" "artifact sha256"
nothing_left

# A fetch step over ssh: the window opens to the proxy only (which relays
# to an upstream in a namespace of the test's own), then closes again.
test_netns
ip netns exec "$NS" python3 "$TOP/tests/integration/upstream.py" 8080 --tag allowed &
BG_PIDS+=($!)
up() { in_ns python3 -c 'import socket; socket.create_connection(("127.0.0.1", 8080), 1)' 2>/dev/null; }
wait_for --timeout 60 --what "the upstream on 8080" up
cat >"$T/fetch.yaml" <<'R'
image: debian-ssh
allow: ["127.0.0.1:8080"]
limits: {boot_timeout: 120s}
steps:
  - name: fetch
    network: fetch
    run: |
      bash <<'EOS'
      exec 3<>/dev/tcp/169.254.77.1/3128
      printf 'GET http://127.0.0.1:8080/file.txt HTTP/1.0\r\n\r\n' >&3
      grep -q hello-from-allowed <&3 && echo "FETCH:ok"
      EOS
      timeout 5 bash -c 'exec 3<>/dev/tcp/169.254.77.1/22' 2>/dev/null && echo LEAK-22 || echo "HOST22:blocked"
  - name: after
    run: |
      timeout 5 bash -c 'exec 3<>/dev/tcp/169.254.77.1/3128' 2>/dev/null && echo LEAK-PROXY || echo "PROXY:closed"
R
rc=0
in_ns env QCTL_RUN_ROOT="$QCTL_RUN_ROOT" QCTL_STATE_DIR="$QCTL_STATE_DIR" QCTL_IMAGES="$QCTL_IMAGES" \
	"$QCTL" run --json "$T/fetch.yaml" >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" = 0 ] || { tail -40 "$T/err"; fail "fetch recipe: exit $rc"; }
for want in "fetch| FETCH:ok" "fetch| HOST22:blocked" "after| PROXY:closed"; do
	grep -qxF -- "$want" "$T/err" || { tail -40 "$T/err"; fail "missing line: $want"; }
done
! grep -q LEAK "$T/err" || fail "the guest opened a connection: $(grep LEAK "$T/err")"
expect_eq "$(json "$T/out" '[(n["method"], n["host"], n["port"], n["allowed"]) for n in r["network"]]')" \
	'[["GET", "127.0.0.1", 8080, true]]' "network record"
nothing_left

cat >"$T/fail.yaml" <<R
image: debian-ssh
limits: {boot_timeout: 120s}
steps:
  - {name: ok, run: "echo first"}
  - {name: bad, run: "echo before-failing; exit 3"}
  - {name: never, run: "echo SHOULD-NOT-RUN"}
R
run_qctl 1 --json "$T/fail.yaml"
expect_eq "$(json "$T/out" 'r["status"]')" failed status
expect_eq "$(json "$T/out" '[s["exit_code"] for s in r["steps"]]')" "[0, 3, null]" "step exit codes"
expect_eq "$(json "$T/out" 'r["reason"]')" 'step "bad" failed with exit code 3' reason
grep -qx 'bad| before-failing' "$T/err" || fail "output of the failing step"
! grep -q SHOULD-NOT-RUN "$T/err" || fail "a step after the failure ran"
nothing_left

# The guest's sshd dies during a step (all of it: the session too): the
# connection ends, so does the build, exit 4.
cat >"$T/lost.yaml" <<'R'
image: debian-ssh
limits: {boot_timeout: 120s}
steps:
  - {name: kill, run: "echo killing; kill -9 $(pidof sshd); sleep 60; echo SHOULD-NOT-RUN"}
R
run_qctl 4 --json "$T/lost.yaml"
expect_eq "$(json "$T/out" 'r["reason"]')" "ssh transport lost: connection closed" reason
grep -qx 'kill| killing' "$T/err" || fail "the step's output before the loss"
! grep -q SHOULD-NOT-RUN "$T/err" || fail "output after the connection ended"
nothing_left

# The bridge while a step runs: nobody, no capabilities, no_new_privs,
# seccomp, in the builder's namespace, fds 0-2 on /dev/null and its two
# sockets only; it dies with a killed manager, and gc reaps the rest.
cat >"$T/long.yaml" <<'R'
image: debian-ssh
limits: {boot_timeout: 120s}
steps: [{name: long, run: "echo started; sleep 600"}]
R
"$QCTL" run "$T/long.yaml" >"$T/long.out" 2>&1 &
mpid=$!
BG_PIDS+=($mpid)
wait_step long "$T/long.out" "$mpid"
bpid=$(bridges_of_test)
[ -n "$bpid" ] && [ "$(echo "$bpid" | wc -w)" = 1 ] || fail "bridges: '$bpid'"
st=/proc/$bpid/status
expect_eq "$(awk '/^Uid:/ {print $2, $3, $4, $5}' "$st")" \
	"$(id -u nobody) $(id -u nobody) $(id -u nobody) $(id -u nobody)" "bridge uid"
expect_eq "$(awk '/^CapEff:/ {print $2}' "$st")" 0000000000000000 "bridge CapEff"
expect_eq "$(awk '/^CapBnd:/ {print $2}' "$st")" 0000000000000000 "bridge CapBnd"
expect_eq "$(awk '/^NoNewPrivs:/ {print $2}' "$st")" 1 "bridge no_new_privs"
expect_eq "$(awk '/^Seccomp:/ {print $2}' "$st")" 2 "bridge seccomp"
[ "$(readlink "/proc/$bpid/ns/net")" != "$(readlink /proc/self/ns/net)" ] ||
	fail "the bridge is in the host's network namespace"
expect_eq "$(ls "/proc/$bpid/fd" | sort -n | tr '\n' ' ')" "0 1 2 3 4 " "bridge fds"
expect_eq "$(readlink "/proc/$bpid/fd/0")" /dev/null "bridge stdin"
expect_eq "$(tr '\0' '\n' <"/proc/$bpid/environ" | wc -l)" 0 "bridge environment"
kill -9 "$mpid"
wait_for --timeout 30 --what "the bridge to die with its manager" gone "$bpid"
"$QCTL" gc >"$T/gc" 2>&1 || fail "gc failed: $(cat "$T/gc")"
grep -q "removed namespace" "$T/gc" || fail "gc: $(cat "$T/gc")"
no_qemu_left
[ -z "$(leftover_netns)" ] || fail "namespace left: $(leftover_netns)"

# A guest that shows another host key: the image's init makes a fresh one
# when its kernel command line says so (images/ssh/init), as an impostor
# would.  The bridge refuses it before anything runs.
mkdir -p "$T/img"
for f in vmlinuz vmlinux initrd.img rootfs.img; do
	[ ! -e "$IMG/$f" ] || ln -s "$IMG/$f" "$T/img/$f"
done
python3 - "$IMG/image.json" "$T/img/image.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["cmdline"] += " qctl.ssh.hostkey=fresh"
m["name"] = "debian-ssh-impostor"
json.dump(m, open(sys.argv[2], "w"))
PY
cat >"$T/tamper.yaml" <<R
image: $T/img
limits: {boot_timeout: 120s}
steps: [{name: never, run: "echo SHOULD-NOT-RUN"}]
R
run_qctl 4 --json "$T/tamper.yaml"
expect_eq "$(json "$T/out" 'r["status"]')" error status
reason=$(json "$T/out" 'r["reason"]')
case $reason in
"ssh transport: host key of the guest does not match: it showed ssh-ed25519 SHA256:"*", this build's is SHA256:"*) ;;
*) fail "reason: $reason" ;;
esac
! grep -q SHOULD-NOT-RUN "$T/err" || fail "a step ran on an impostor"
nothing_left

# The recipe's transport must be the image's: exit 2, no VM.
printf 'image: debian-ssh\ntransport: agent\nsteps: [{name: x, run: "true"}]\n' >"$T/t1.yaml"
run_qctl 2 --json "$T/t1.yaml"
grep -q 'transport agent: image debian-ssh runs no qctl agent' "$T/err" || fail "transport agent on debian-ssh"
printf 'transport: ssh\nsteps: [{name: x, run: "true"}]\n' >"$T/t2.yaml"
run_qctl 2 --json "$T/t2.yaml"
grep -q 'transport ssh: image minimal has none' "$T/err" || fail "transport ssh on minimal"
printf 'transport: telnet\nsteps: [{name: x, run: "true"}]\n' >"$T/t3.yaml"
run_qctl 2 "$T/t3.yaml"
grep -q 'expected agent or ssh' "$T/err" || fail "transport telnet"
echo ok
