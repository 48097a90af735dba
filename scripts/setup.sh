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
curl jq wrk stress-ng hyperfine util-linux procps python3
gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
qemu-system-x86 qemu-system-arm busybox-static cpio
"
# make ARCH=arm64 links against Debian's arm64 multiarch libraries; tests/vm
# boots Debian's cloud kernels (fetched by apt-get download, not installed).
# libjemalloc-dev is not Multi-Arch: same (its :arm64 would REMOVE the host's),
# so arm64 gets the library only (the Makefile links libjemalloc.so.2).
PKGS_ARM64="
libbpf-dev:arm64 libelf-dev:arm64 zlib1g-dev:arm64 libcmocka-dev:arm64
libjemalloc2:arm64 libmicrohttpd-dev:arm64 libjansson-dev:arm64
libsqlite3-dev:arm64 libcgroup-dev:arm64 libinih-dev:arm64 libpcre2-dev:arm64
libcurl4-openssl-dev:arm64 libncurses-dev:arm64
"
PKGS="$PKGS $PKGS_ARM64"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
# arm64 as a foreign architecture (once): the :arm64 packages above and the
# arm64 kernel for tests/vm need it in apt's lists.
added_arch=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	$SUDO dpkg --add-architecture arm64
	added_arch=1
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ] && [ "$added_arch" -eq 0 ]; then
	echo "setup: all packages present"
	exit 0
fi

echo "setup: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
