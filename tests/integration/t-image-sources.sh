# mkimage-debian.sh --print-sources: the apt sources an image gets from a
# host's apt configuration (a made-up one here, in both formats): only
# SUITE, SUITE-updates and SUITE-security, only enabled http(s)
# repositories with Debian's key, with the requested types; hosts as
# host:port.  Names are reserved test names (RFC 2606); nothing is fetched.
. "$(dirname "$0")/lib.sh"

apt="$T/apt"
mkdir -p "$apt/sources.list.d"
cat >"$apt/sources.list" <<'EOF'
# a comment
deb http://one.test/debian bookworm main contrib
deb-src http://one.test/debian bookworm main contrib
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] https://two.test:8443/debian-security bookworm-security main
deb [signed-by=/etc/apt/keyrings/other.gpg] http://other.test/x bookworm main
deb http://one.test/debian trixie main
deb file:///srv/mirror bookworm main
EOF
cat >"$apt/sources.list.d/deb822.sources" <<'EOF'
Types: deb
# a comment inside a stanza
URIs: http://three.test/debian http://[fd00::1]/debian
Suites: bookworm bookworm-updates bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://off.test/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: http://inline.test/debian
Suites: bookworm
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 -----END PGP PUBLIC KEY BLOCK-----
EOF
echo 'deb http://ignored.test/debian bookworm main' \
	>"$apt/sources.list.d/ignored.list.disabled"

QCTL_APT_DIR="$apt" "$TOP/images/mkimage-debian.sh" --print-sources \
	--suite bookworm --source-type deb --source-type deb-src \
	>"$T/out" 2>"$T/err" || { cat "$T/err"; fail "--print-sources"; }
cat >"$T/want" <<'EOF'
Types: deb deb-src
URIs: http://one.test/debian
Suites: bookworm
Components: main contrib

Types: deb deb-src
URIs: https://two.test:8443/debian-security
Suites: bookworm-security
Components: main

Types: deb deb-src
URIs: http://three.test/debian
Suites: bookworm
Components: main

Types: deb deb-src
URIs: http://three.test/debian
Suites: bookworm-updates
Components: main

Types: deb deb-src
URIs: http://[fd00::1]/debian
Suites: bookworm
Components: main

Types: deb deb-src
URIs: http://[fd00::1]/debian
Suites: bookworm-updates
Components: main

# hosts: one.test:80 two.test:8443 three.test:80 [fd00::1]:80
EOF
diff -u "$T/want" "$T/out" || fail "the image's sources"
grep -q 'signed by /etc/apt/keyrings/other.gpg' "$T/err" ||
	{ cat "$T/err"; fail "no warning for another key"; }
grep -q 'signed by (an inline key)' "$T/err" ||
	{ cat "$T/err"; fail "no warning for an inline key"; }
grep -q 'skipping file:///srv/mirror' "$T/err" ||
	{ cat "$T/err"; fail "no warning for file:"; }

# no repository for the suite: an error, not an empty sources file
rc=0
QCTL_APT_DIR="$apt" "$TOP/images/mkimage-debian.sh" --print-sources \
	--suite bullseye >"$T/out" 2>"$T/err" || rc=$?
expect_eq "$rc" 1 "no sources for the suite"
grep -q 'no http(s) repository for bullseye' "$T/err" ||
	{ cat "$T/err"; fail "message"; }
echo ok
