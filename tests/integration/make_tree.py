#!/usr/bin/env python3
"""Builds the release trees the integration tests snapshot and restore.

  make_tree.py full DIR [--big-mib N] [--small N]   every kind of entry a release can hold
  make_tree.py bulk DIR --mib N [--files N]         plain data that takes a while to archive

'full' has: empty files, one big file (random, zero and repetitive regions, so both the
incompressible and the compressible paths of zstd are used), many small files, empty dirs,
symlinks (relative, absolute, dangling, to a dir, long target), hard links (across dirs and
names), unicode, space, tab, newline and backslash names, names and link targets that are not
UTF-8 (Latin-1, CESU-8, overlong, 0xff) or that a Unicode library would rewrite (NFC and NFD),
a FIFO and (as root) a character device, a 255-byte name and a path longer
than 255 bytes, modes 0600/0755/0444/4755/2755/1777/0700/0555, owners other than root (when
run as root) and mtimes set on everything (a third in whole seconds, the rest with
nanoseconds), dirs last; the root itself is
0750 with its own mtime, so a restore that loses the release directory's metadata shows.
Content is pseudo-random from a fixed seed except the random regions of the big file.
"""
import argparse
import os
import random
import sys

MIB = 1 << 20


def write(path, data, mode=None):
    with open(path, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)


def big_file(path, mib):
    # 1 MiB blocks cycling random / zeros / text / random: ~half incompressible.
    text = (b"snapback big file line, compressible but not trivially so 0123456789\n" * 20000)[:MIB]
    zeros = bytes(MIB)
    with open(path, "wb") as f:
        for idx in range(mib):
            kind = idx % 4
            if kind in (0, 3):
                f.write(os.urandom(MIB))
            elif kind == 1:
                f.write(zeros)
            else:
                f.write(text)


def full(root, big_mib, small):
    rnd = random.Random(20261124)
    is_root = os.geteuid() == 0
    os.makedirs(root)
    j = os.path.join

    # empty files
    write(j(root, "empty"), b"")
    os.makedirs(j(root, "config"))
    write(j(root, "config", ".keep"), b"")
    write(j(root, "config", "database.yml"), b"production:\n  adapter: postgresql\n", 0o600)

    # big files: one of big_mib MiB, and two whose sizes sit just off a 1 MiB chunk boundary
    os.makedirs(j(root, "vendor", "assets"))
    if big_mib:
        big_file(j(root, "vendor", "assets", "big.bin"), big_mib)
    write(j(root, "vendor", "assets", "1MiB-plus-1"), os.urandom(MIB + 1))
    write(j(root, "vendor", "assets", "3MiB-minus-1"), rnd.randbytes(3 * MIB - 1))

    # many small files in 100 dirs
    per_dir = max(1, small // 100)
    made = 0
    d = 0
    while made < small:
        sub = j(root, "public", "packs", "%03d" % d)
        os.makedirs(sub)
        for idx in range(min(per_dir, small - made)):
            size = rnd.choice((0, 1, 17, 100, 511, 512, 513, 1000, 4096, rnd.randrange(8192)))
            write(j(sub, "f%05d.js" % made), rnd.randbytes(size))
            made += 1
        d += 1

    # empty dirs
    os.makedirs(j(root, "tmp", "cache"))
    os.makedirs(j(root, "log"))
    os.makedirs(j(root, "deep", "a", "b", "c", "d", "e"))
    os.makedirs(j(root, "private"))
    os.chmod(j(root, "private"), 0o700)

    # symlinks
    os.makedirs(j(root, "bin"))
    write(j(root, "bin", "rails"), b"#!/bin/sh\necho rails\n", 0o755)
    os.symlink("../bin/rails", j(root, "config", "link-relative"))
    os.symlink("/etc/hostname", j(root, "link-absolute"))
    os.symlink("does/not/exist", j(root, "link-dangling"))
    os.symlink("public/packs", j(root, "link-to-dir"))
    os.symlink("x" * 120 + "/" + "y" * 120, j(root, "link-long-target"))
    os.symlink("../../../../../../etc/passwd", j(root, "deep", "link-up-and-out"))

    # hard links: a group of three across dirs, one with a unicode name; a pair in one dir
    os.makedirs(j(root, "hard", "other"))
    write(j(root, "hard", "one"), b"hard-linked content\n" * 100)
    os.link(j(root, "hard", "one"), j(root, "hard", "two"))
    os.link(j(root, "hard", "one"), j(root, "hard", "other", "drei ✓"))
    write(j(root, "hard", "pair-a"), b"")
    os.link(j(root, "hard", "pair-a"), j(root, "hard", "pair-b"))

    # names
    os.makedirs(j(root, "names", "日本語 ディレクトリ"))
    for name in ("with space.txt", " leading space", "trailing space ", "ünïcødé ✓.txt",
                 "tab\tname", "new\nline", "back\\slash", "-dash", "quote'\"s", "*star?",
                 "%percent%s", "日本語 ディレクトリ/ファイル.txt", "emoji 🚀.md"):
        write(j(root, "names", name), name.encode() + b"\n")
    write(j(root, "names", "n" * 255), b"255-byte name\n")
    # a name that is not UTF-8 (Latin-1 bytes): names are bytes, whatever the locale
    write(os.path.join(os.fsencode(j(root, "names")), b"latin1-\xe9t\xe9.txt"), b"latin-1\n")
    # more bytes a locale or a Unicode library would rewrite: the same word in NFC and NFD, CESU-8
    # surrogates, an overlong sequence, bytes that are never UTF-8; link targets with them too
    nb = os.fsencode(j(root, "names"))
    for raw in ("caf\u00e9 nfc".encode(), "cafe\u0301 nfd".encode(), b"cesu-\xed\xa0\xbd\xed\xb8\x80",
                b"overlong-\xc0\xaf", b"never-utf8-\xff\xfe"):
        write(os.path.join(nb, raw), raw + b"\n")
    os.symlink("cafe\u0301 nfd".encode(), os.path.join(nb, b"link-to-nfd"))
    os.symlink(b"never-utf8-\xff\xfe", os.path.join(nb, "link-\u00e9-to-bytes".encode()))
    os.link(os.path.join(nb, b"never-utf8-\xff\xfe"), os.path.join(nb, b"hard-\xff"))

    # special files: a FIFO (never opened by the walk) and, as root, a character device
    os.makedirs(j(root, "special"))
    os.mkfifo(j(root, "special", "fifo"), 0o640)
    if is_root:
        os.mknod(j(root, "special", "null"), 0o20640, os.makedev(1, 3))
    long_dir = j(root, "names", *(["d" * 60] * 5))  # > 255 bytes of path
    os.makedirs(long_dir)
    write(j(long_dir, "f" * 100), b"long path\n")

    # modes
    os.makedirs(j(root, "modes"))
    write(j(root, "modes", "secret-0600"), b"secret\n", 0o600)
    write(j(root, "modes", "exec-0755"), b"#!/bin/sh\n", 0o755)
    write(j(root, "modes", "readonly-0444"), b"ro\n", 0o444)
    write(j(root, "modes", "setuid-4755"), b"#!/bin/sh\necho setuid\n")
    os.makedirs(j(root, "modes", "setgid-dir-2755"))
    os.makedirs(j(root, "modes", "sticky-1777"))
    os.makedirs(j(root, "modes", "readonly-dir-0555"))
    write(j(root, "modes", "readonly-dir-0555", "inside"), b"in a read-only dir\n")
    if is_root:
        os.chown(j(root, "modes", "setuid-4755"), 1234, 5678)
        os.chown(j(root, "modes", "secret-0600"), 33, 33)
        os.chown(j(root, "modes", "setgid-dir-2755"), 1234, 5678)
        os.lchown(j(root, "link-dangling"), 1234, 5678)
    # chmod after chown: chown clears setuid/setgid
    os.chmod(j(root, "modes", "setuid-4755"), 0o4755)
    os.chmod(j(root, "modes", "setgid-dir-2755"), 0o2755)
    os.chmod(j(root, "modes", "sticky-1777"), 0o1777)

    # mtimes (with nanoseconds), children before their dirs; the last one read-only
    set_times(root, rnd)
    os.chmod(j(root, "modes", "readonly-dir-0555"), 0o555)
    os.chmod(root, 0o750)


def set_times(root, rnd):
    for d, dirs, files in os.walk(root, topdown=False):
        for n in files + dirs:
            p = os.path.join(d, n)
            if os.path.isdir(p) and not os.path.islink(p):
                continue
            # a third whole seconds (as a package manager leaves them), the rest with nanoseconds
            ns = rnd.randrange(978307200, 1893456000) * 10**9
            if rnd.randrange(3):
                ns += rnd.randrange(10**9)
            os.utime(p, ns=(ns, ns), follow_symlinks=False)
        ns = rnd.randrange(978307200, 1893456000) * 10**9 + rnd.randrange(10**9)
        os.utime(d, ns=(ns, ns))


def bulk(root, mib, files):
    os.makedirs(root)
    rnd = random.Random(7)
    per = max(1, mib * MIB // max(files, 1))
    for idx in range(files):
        sub = os.path.join(root, "d%03d" % (idx % 50))
        os.makedirs(sub, exist_ok=True)
        # half random, half repetitive: zstd has real work on both
        half = per // 2
        write(os.path.join(sub, "f%06d" % idx), os.urandom(half) + bytes([idx % 251]) * (per - half))
    write(os.path.join(root, "tiny"), b"x")
    del rnd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=("full", "bulk"))
    ap.add_argument("dir")
    ap.add_argument("--big-mib", type=int, default=200)
    ap.add_argument("--small", type=int, default=20000)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--files", type=int, default=64)
    a = ap.parse_args()
    if a.kind == "full":
        full(a.dir, a.big_mib, a.small)
    else:
        bulk(a.dir, a.mib, a.files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
