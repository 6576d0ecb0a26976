#!/bin/sh
# A tiny "build": generate a program and a checksum manifest into out/.
set -e
mkdir -p out
cat > out/hello <<EOT
#!/bin/sh
echo "\${GREETING:-hello}, built on \$(uname -m)"
EOT
chmod +x out/hello
sha256sum src/*.txt > out/MANIFEST
echo "built $(ls out | wc -l) files"
