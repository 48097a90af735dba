#!/bin/sh
# tests/vm/gen-vmlinux-h.sh: regenerate bpf/vmlinux/arm64/vmlinux.h, the
# checked-in header that ARCH=arm64 builds compile the BPF programs against.
#
# HOW: fetch Debian's arm64 cloud kernel (fetch-kernel.sh); its vmlinuz is
# an uncompressed arm64 Image whose .BTF section sits in it verbatim (the
# package's System.map is a stub, so the blob is found by the BTF header's
# magic 0xeB9F, version 1, hdr_len 24, and cut to hdr_len + str_off +
# str_len); bpftool dumps it as C; vmlinux-min.py keeps what bpf/ needs.
# Types that the programs reach only through a member chain show up as
# clang's "incomplete definition of type" errors and are added as roots
# until both programs compile. Finally the objects compiled against the
# minimized header are compared with those compiled against the full one:
# the same instructions and relocations, or the script fails.
#
# Usage: gen-vmlinux-h.sh [CACHEDIR]   (default build/vm/kernels)
# Rerun it after a change to bpf/*.bpf.c that uses a type not yet in there.
set -eu
cd "$(dirname "$0")/../.."
cache=${1:-build/vm/kernels}
kdir=$(sh tests/vm/fetch-kernel.sh arm64 "$cache")
img=$(ls "$kdir"/boot/vmlinuz-* | head -n 1)
work=$(mktemp -d /tmp/gen-vmlinux.XXXXXX)
trap 'rm -rf "$work"' EXIT

python3 - "$img" "$work/vmlinux.btf" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
i = d.find(b'\x9f\xeb\x01\x00\x18\x00\x00\x00')
if i < 0:
    sys.exit('gen-vmlinux-h: %s: no BTF blob in the image' % sys.argv[1])
magic, ver, flags, hlen, toff, tlen, soff, slen = struct.unpack_from('<HBBIIIII', d, i)
open(sys.argv[2], 'wb').write(d[i:i + hlen + soff + slen])
PY
mkdir -p "$work/full" "$work/min"
bpftool btf dump file "$work/vmlinux.btf" format c > "$work/full/vmlinux.h"

srcs=$(ls bpf/*.bpf.c bpf/*.h | tr '\n' ' ')
bpfcc() { clang -g -O2 -target bpf -D__TARGET_ARCH_arm64 -I"$1" -I. -Wall -Werror -Wno-unused-function -c "$2" -o "$3"; }

roots=""
n=0
while :; do
	# shellcheck disable=SC2086
	eval "python3 tests/vm/vmlinux-min.py \"\$work/full/vmlinux.h\" \"\$work/min/vmlinux.h\" $roots $srcs" >&2
	missing=""
	for p in bpf/*.bpf.c; do
		o=$work/min/$(basename "$p" .c).o
		if ! bpfcc "$work/min" "$p" "$o" 2>"$work/err"; then
			m=$(sed -n "s/.*incomplete definition of type '\(struct\|union\) \([A-Za-z_0-9]*\)'.*/\1 \2/p" "$work/err" | sort -u)
			if [ -z "$m" ]; then cat "$work/err" >&2; echo "gen-vmlinux-h: $p does not compile against the minimized header" >&2; exit 1; fi
			missing="$missing
$m"
		fi
	done
	[ -n "$missing" ] || break
	roots="$roots $(printf '%s\n' "$missing" | sed '/^$/d' | sort -u | sed "s/.*/-r '&'/" | tr '\n' ' ')"
	n=$((n + 1))
	[ $n -lt 20 ] || { echo "gen-vmlinux-h: no fixed point after 20 rounds" >&2; exit 1; }
done

for p in bpf/*.bpf.c; do
	b=$(basename "$p" .c)
	bpfcc "$work/full" "$p" "$work/full/$b.o"
	llvm-objdump -d -r "$work/full/$b.o" | tail -n +3 > "$work/full/$b.dis"
	llvm-objdump -d -r "$work/min/$b.o" | tail -n +3 > "$work/min/$b.dis"
	cmp -s "$work/full/$b.dis" "$work/min/$b.dis" || { echo "gen-vmlinux-h: $p: code differs between the full and the minimized header" >&2; exit 1; }
done
mkdir -p bpf/vmlinux/arm64
{
	echo "/* bpf/vmlinux/arm64/vmlinux.h: from $(basename "$img") (Debian $(basename "$kdir")),"
	echo " * BTF dumped by bpftool and minimized by tests/vm/gen-vmlinux-h.sh. */"
	cat "$work/min/vmlinux.h"
} > bpf/vmlinux/arm64/vmlinux.h
echo "bpf/vmlinux/arm64/vmlinux.h: $(wc -c < bpf/vmlinux/arm64/vmlinux.h) bytes; roots added:$roots" >&2
