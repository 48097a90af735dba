#!/bin/sh
# tests/vm/mkinitramfs.sh: build the initramfs that tests/vm/run.sh boots.
#
# The image holds: busybox (static) as the base userland; bash, jq, curl and
# procps (ps, pgrep, pkill) because the integration scripts use them; the
# project's binaries for the arch, the integration scripts, tests/lib.sh,
# tests/run.sh, tests/fixtures and the shared testdata; every shared library
# those programs need; and tests/vm/init.sh as /init.
#
# WHERE PROGRAMS COME FROM: for the host's arch (x86_64) from this machine
# (setup.sh installs them); for arm64 from Debian's arm64 packages, fetched
# with `apt-get download` into CACHE/debs/arm64 and unpacked with dpkg -x
# into CACHE/pkgroot-arm64 (nothing is installed). Shared libraries are found
# by walking each ELF file's DT_NEEDED entries (readelf reads either arch)
# through the unpacked packages, then the host's multiarch directories
# /lib/<triplet> and /usr/lib/<triplet> (the arm64 -dev packages that
# setup.sh installs bring libcurl, libbpf, libjansson ... for arm64 there).
# A library found nowhere stops the build with its name.
#
# Usage: mkinitramfs.sh ARCH BUILD OUT.cpio.gz CACHE
#        mkinitramfs.sh --fetch ARCH CACHE   (only fetch and unpack the
#          foreign arch's packages: run.sh checks this prerequisite before
#          building; exit 1 with a "mkinitramfs:" line when apt cannot)
#   ARCH x86_64|arm64; BUILD the project's build dir for ARCH.
# Env: TESTDATA (the shared testdata dir; left out when absent).
set -eu
fetch_only=0
if [ "${1:-}" = --fetch ]; then
	fetch_only=1
	arch=${2:?usage: mkinitramfs.sh --fetch ARCH CACHE}; cache=${3:?usage: mkinitramfs.sh --fetch ARCH CACHE}
	build=; out=
else
	arch=${1:?usage: mkinitramfs.sh ARCH BUILD OUT CACHE}
	build=${2:?}; out=${3:?}; cache=${4:?}
fi
case "$arch" in
x86_64) debarch=amd64; triplet=x86_64-linux-gnu ;;
arm64) debarch=arm64; triplet=aarch64-linux-gnu ;;
*) echo "mkinitramfs: arch $arch: want x86_64 or arm64" >&2; exit 2 ;;
esac
hostarch=$(dpkg --print-architecture)
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# Userland packages for a foreign arch (and the libraries they need that the
# host's multiarch install may lack).
TOOL_PKGS="busybox-static bash jq libjq1 libonig5 curl procps libproc2-0
libsystemd0 libgcrypt20 libgpg-error0 liblz4-1 liblzma5 libzstd1 libcap2
libtinfo6 libncursesw6"
pkgroot=/
if [ "$debarch" != "$hostarch" ]; then
	pkgroot=$cache/pkgroot-$debarch
	if [ ! -f "$pkgroot/.done" ]; then
		dl=$cache/debs/$debarch
		mkdir -p "$dl"; chmod 777 "$dl"
		pkgs=""
		for p in $TOOL_PKGS; do ls "$dl/${p}_"*.deb >/dev/null 2>&1 || pkgs="$pkgs $p:$debarch"; done
		if [ -n "$pkgs" ]; then
			# shellcheck disable=SC2086
			(cd "$dl" && apt-get download -q $pkgs >&2) || {
				echo "mkinitramfs: apt-get download$pkgs failed (is $debarch in apt's lists? run scripts/setup.sh)" >&2; exit 1; }
		fi
		rm -rf "$pkgroot"; mkdir -p "$pkgroot"
		for d in "$dl"/*.deb; do dpkg -x "$d" "$pkgroot"; done
		touch "$pkgroot/.done"
	fi
fi
# the host's own tools (setup.sh installs them)
for t in cpio gzip readelf file; do
	command -v $t >/dev/null 2>&1 || { echo "mkinitramfs: $t not installed (run scripts/setup.sh)" >&2; exit 1; }
done
if [ "$pkgroot" = / ]; then
	file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' ||
		{ echo "mkinitramfs: /bin/busybox: no static busybox (scripts/setup.sh installs busybox-static)" >&2; exit 1; }
fi
[ $fetch_only -eq 0 ] || exit 0
root=$(mktemp -d /tmp/edge-initramfs.XXXXXX)
trap 'rm -rf "$root"' EXIT

libdirs="$pkgroot/lib/$triplet $pkgroot/usr/lib/$triplet /lib/$triplet /usr/lib/$triplet"
findlib() {
	for d in $libdirs; do
		[ -e "$d/$1" ] && { echo "$d/$1"; return 0; }
	done
	return 1
}
# copy_elf SRC DEST: copy an ELF file and, recursively, the libraries it needs
seen=" "
copy_elf() {
	mkdir -p "$root/$(dirname "$2")"
	cp -L "$1" "$root/$2"
	for n in $(readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		case "$seen" in *" $n "*) continue ;; esac
		seen="$seen$n "
		lib=$(findlib "$n") || { echo "mkinitramfs: $1 needs $n: not found in $libdirs" >&2; exit 1; }
		copy_elf "$lib" "/lib/$triplet/$n"
	done
}
tool() {  # tool NAME: a program from the packages, into /usr/bin
	for d in usr/bin bin usr/sbin sbin; do
		if [ -f "$pkgroot/$d/$1" ]; then copy_elf "$pkgroot/$d/$1" "/usr/bin/$1"; return 0; fi
	done
	echo "mkinitramfs: program $1 not found under $pkgroot" >&2; exit 1
}

mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/lib/$triplet" \
	"$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/run" "$root/root" "$root/etc"
cp "$pkgroot/bin/busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
file -L "$root/bin/busybox" | grep -q 'statically linked' || { echo "mkinitramfs: $pkgroot/bin/busybox is not static" >&2; exit 1; }
for t in bash jq curl ps pgrep pkill; do tool "$t"; done
ln -s /usr/bin/bash "$root/bin/bash"
# the loader, at the path the programs name
interp=$(readelf -l "$root/usr/bin/bash" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
mkdir -p "$root$(dirname "$interp")"
cp -L "$(findlib "$(basename "$interp")")" "$root$interp"
[ "$(dirname "$interp")" = /lib ] || ln -sf "$interp" "$root/lib/$(basename "$interp")"
# libgcc_s is dlopen'ed by glibc's pthread_cancel: take it along
if l=$(findlib libgcc_s.so.1); then cp -L "$l" "$root/lib/$triplet/"; fi
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
printf '127.0.0.1 localhost\n' > "$root/etc/hosts"

# the project
w=$root/work
mkdir -p "$w/build/bin" "$w/tests"
for b in "$build"/bin/*; do copy_elf "$b" "/work/build/bin/$(basename "$b")"; done
cp tests/lib.sh tests/run.sh "$w/tests/"
cp -r tests/integration tests/fixtures "$w/tests/"
mkdir -p "$w/tests/vm"; cp tests/vm/suite.sh "$w/tests/vm/"
if [ -n "${TESTDATA:-}" ] && [ -d "$TESTDATA" ]; then
	cp -r "$TESTDATA" "$w/testdata"
fi
cp tests/vm/init.sh "$root/init"; chmod 755 "$root/init"
echo "$arch" > "$root/etc/edge-arch"

(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
echo "mkinitramfs: $out: $(du -k "$out" | cut -f1) KiB" >&2
