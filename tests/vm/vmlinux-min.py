#!/usr/bin/env python3
"""tests/vm/vmlinux-min.py: cut a bpftool-dumped vmlinux.h down to what the
BPF programs need.

A full vmlinux.h is 2-3 MB; the CO-RE programs in bpf/ touch a few dozen
kernel types. This keeps every type that the sources (and libbpf's headers)
name, plus the closure of what those types hold BY VALUE (an embedded struct
needs its definition; a pointer needs only a forward declaration). Kept types
are copied verbatim, in bpftool's order, so the layouts the compiler sees are
exactly the full header's, and the CO-RE relocations are identical.

Usage: vmlinux-min.py FULL_VMLINUX_H OUT_H [-r 'struct x']... SOURCE...
  SOURCE: the .bpf.c/.h files whose identifiers are the roots (libbpf's
  headers from /usr/include/bpf are added automatically). -r adds a root
  that the sources reach only through a member (cg->kn->id needs struct
  kernfs_node); tests/vm/gen-vmlinux-h.sh finds those from the compiler's
  "incomplete definition of type" errors.
"""
import re
import sys

TAG = re.compile(r'\b(struct|union|enum)\s+([A-Za-z_]\w*)')
IDENT = re.compile(r'\b[A-Za-z_]\w*\b')


def split_decls(text):
    """Top-level declarations of a bpftool C dump, in order. bpftool puts a
    blank line between declarations; the #ifndef/#pragma guard lines are
    kept aside as prologue and epilogue."""
    body = text
    start = body.index('#endif\n', body.index('#pragma clang attribute push')) + len('#endif\n')
    end = body.rindex('#ifndef BPF_NO_PRESERVE_ACCESS_INDEX')
    prologue, middle, epilogue = body[:start], body[start:end], body[end:]
    decls = [d.strip('\n') for d in re.split(r'\n\s*\n', middle) if d.strip()]
    return prologue, decls, epilogue


def classify(d):
    """(kind, name) of a declaration: kind is struct/union/enum/fwd/typedef;
    name is None for an anonymous enum."""
    m = re.match(r'(struct|union)\s+(\w+)\s*;$', d)
    if m:
        return 'fwd', m.group(1) + ' ' + m.group(2)
    m = re.match(r'(struct|union)\s+(\w+)\s*\{', d)
    if m:
        return m.group(1), m.group(1) + ' ' + m.group(2)
    m = re.match(r'enum\s+(\w+)\s*\{', d)
    if m:
        return 'enum', 'enum ' + m.group(1)
    if re.match(r'enum\s*\{', d):
        return 'enum', None
    if d.startswith('typedef'):
        # the typedef'd name: the last identifier before ';' outside
        # parentheses, or the one in (*name) for function pointers
        if '{' in d:
            return 'typedef', re.search(r'(\w+)\s*(\[[^\]]*\])*\s*;\s*$', d).group(1)
        m = re.search(r'\(\s*\*\s*(\w+)\s*\)\s*\(', d)      # typedef T (*name)(...);
        if m:
            return 'typedef', m.group(1)
        m = re.search(r'(\w+)\s*(\[[^\]]*\])*\s*;\s*$', d)    # typedef T name[N];
        if m:
            return 'typedef', m.group(1)
        return 'typedef', re.search(r'(\w+)\s*\(', d).group(1)  # typedef T name(...);
    return 'other', None


def refs(d, self_name):
    """References of a declaration's body: (value_refs, pointer_refs), each a
    set of 'struct x' / 'union x' / 'enum x' / typedef names."""
    value, pointer = set(), set()
    for m in TAG.finditer(d):
        key = m.group(1) + ' ' + m.group(2)
        if key == self_name:
            continue
        rest = d[m.end():].lstrip()
        (pointer if rest.startswith('*') else value).add(key)
    # typedef names are plain identifiers; the caller filters them
    stripped = TAG.sub(' ', d)
    for m in IDENT.finditer(stripped):
        rest = stripped[m.end():].lstrip()
        (pointer if rest.startswith('*') else value).add(m.group(0))
    return value, pointer


def main():
    full, out, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    extra, srcs = [], []
    while args:
        a = args.pop(0)
        if a == '-r':
            extra.append(args.pop(0))
        else:
            srcs.append(a)
    text = open(full).read()
    prologue, decls, epilogue = split_decls(text)
    info = [classify(d) for d in decls]
    by_name = {}
    enum_of_const = {}
    for i, (kind, name) in enumerate(info):
        if kind in ('struct', 'union', 'enum', 'typedef') and name:
            by_name.setdefault(name, i)
        if kind == 'enum':
            inner = decls[i][decls[i].index('{') + 1:decls[i].rindex('}')]
            for c in re.findall(r'^\s*(\w+)\s*=', inner, re.M):
                enum_of_const[c] = i

    roots = set(extra)
    libbpf = ['/usr/include/bpf/bpf_helpers.h', '/usr/include/bpf/bpf_helper_defs.h',
              '/usr/include/bpf/bpf_tracing.h', '/usr/include/bpf/bpf_core_read.h']
    for path in srcs + libbpf:
        src = open(path).read()
        for m in TAG.finditer(src):
            roots.add(m.group(1) + ' ' + m.group(2))
        for m in IDENT.finditer(src):
            roots.add(m.group(0))

    keep = set()
    forward = set()
    work = []

    def want(name):
        if name in by_name:
            work.append(by_name[name])
        elif name in enum_of_const:
            work.append(enum_of_const[name])

    for r in roots:
        want(r)
    while work:
        i = work.pop()
        if i in keep:
            continue
        keep.add(i)
        kind, name = info[i]
        value, pointer = refs(decls[i], name)
        if kind == 'typedef':
            # a typedef is used by name; its target is needed as it is
            value |= {p for p in pointer if p.startswith('enum ')}
        for v in value:
            if v in by_name:
                want(v)
            elif v in enum_of_const:
                want(v)
        for p in pointer:
            if p.startswith(('struct ', 'union ')):
                forward.add(p)
            elif p in by_name:  # typedef used through a pointer
                want(p)
            elif p in enum_of_const:
                want(p)

    # forward-declare every struct named through a pointer, kept or not: a
    # kept definition may come after a use in a function pointer's parameters
    fwd = sorted(forward)
    with open(out, 'w') as f:
        f.write('/* Minimized from a bpftool BTF dump by tests/vm/vmlinux-min.py:\n'
                ' * the types bpf/ names and what they hold by value. Regenerate\n'
                ' * with tests/vm/gen-vmlinux-h.sh; do not edit. */\n')
        f.write(prologue)
        f.write('\n')
        for name in fwd:
            f.write(name + ';\n')
        f.write('\n')
        for i, d in enumerate(decls):
            if i in keep and info[i][0] != 'fwd':
                f.write(d + '\n\n')
        f.write(epilogue)
    print('%s: %d of %d declarations, %d forward' % (out, len(keep), len(decls), len(fwd)))


if __name__ == '__main__':
    main()
