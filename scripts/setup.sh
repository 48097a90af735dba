#!/bin/sh
# setup.sh: install every Debian package that the build, the demo, the tests
# and the benchmarks need. Idempotent: packages already present are skipped,
# so a second run costs one dpkg query. Run as root (or with sudo).
set -eu

PKGS="
build-essential make pkg-config git file
clang llvm lld libclang-rt-14-dev
libbpf-dev bpftool libelf-dev zlib1g-dev linux-libc-dev
libcmocka-dev
libpcre2-dev
libjemalloc-dev libjemalloc2
libmicrohttpd-dev libjansson-dev libsqlite3-dev sqlite3
libcgroup-dev libinih-dev libncurses-dev libcurl4-openssl-dev
curl jq wrk stress-ng hyperfine util-linux procps
gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "setup: all packages present"
	exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "setup: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
