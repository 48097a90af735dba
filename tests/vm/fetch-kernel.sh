#!/bin/sh
# tests/vm/fetch-kernel.sh: fetch one of Debian's 6.1 "cloud" kernels with apt
# and unpack it under a cache directory, printing the directory on stdout.
#
# The cloud flavour is the one to boot under QEMU: it has BTF
# (/sys/kernel/btf/vmlinux), cgroup v2 with the cpu, cpuset, memory and pids
# controllers, BPF ring buffers and tp_btf, the virtio drivers built in, and
# it boots in seconds under software emulation.
#
# HOW: the meta package linux-image-cloud-<arch> names the current ABI's
# image package (linux-image-6.1.0-N-cloud-<arch>); `apt-get download` fetches
# that .deb (from the local apt cache's sources, no root needed), `dpkg -x`
# unpacks it. Nothing is installed. The result is cached: a second call with
# the same package name does nothing. KERNEL_PKG_<arch> overrides the package
# (e.g. KERNEL_PKG_arm64=linux-image-6.1.0-47-cloud-arm64) to pin a version.
#
# Usage: fetch-kernel.sh amd64|arm64 CACHEDIR
# Output (stdout): CACHEDIR/<package>, holding boot/vmlinuz-* and lib/modules/.
set -eu
arch=${1:?usage: fetch-kernel.sh amd64|arm64 CACHEDIR}
cache=${2:?usage: fetch-kernel.sh amd64|arm64 CACHEDIR}
case "$arch" in amd64|arm64) ;; *) echo "fetch-kernel: arch $arch: want amd64 or arm64" >&2; exit 2 ;; esac
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

eval "pkg=\${KERNEL_PKG_$arch:-}"
if [ -z "$pkg" ]; then
	# The meta package depends on exactly one image package.
	pkg=$(apt-cache depends "linux-image-cloud-$arch:$arch" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*-cloud-'"$arch"'\).*/\1/p' | head -n 1)
	if [ -z "$pkg" ]; then
		# No apt lists for the package (offline, or arm64 not added as a
		# foreign architecture): use what the cache already holds.
		pkg=$(ls -d "$cache"/linux-image-*-cloud-"$arch" 2>/dev/null | sed 's|.*/||' | sort -V | tail -n 1)
	fi
	if [ -z "$pkg" ]; then
		echo "fetch-kernel: linux-image-cloud-$arch: not known to apt (run scripts/setup.sh: it adds the arm64 architecture and updates the lists)" >&2
		exit 1
	fi
fi
dir=$cache/$pkg
if [ -f "$dir/.done" ]; then echo "$dir"; exit 0; fi

rm -rf "$dir" "$dir.dl"
mkdir -p "$dir.dl"
# apt-get download writes into the current directory; run it as a user that
# can write there (as root apt drops to _apt, which needs the dir writable).
chmod 777 "$dir.dl"
if ! (cd "$dir.dl" && apt-get download -q "$pkg:$arch" >&2); then
	echo "fetch-kernel: apt-get download $pkg:$arch failed" >&2
	exit 1
fi
deb=$(ls "$dir.dl"/*.deb | head -n 1)
dpkg -x "$deb" "$dir"
rm -rf "$dir.dl"
if ! ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1; then
	echo "fetch-kernel: $deb holds no boot/vmlinuz-*" >&2
	exit 1
fi
touch "$dir/.done"
echo "$dir"
