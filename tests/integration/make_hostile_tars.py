#!/usr/bin/env python3
"""Writes hostile tar archives, one per case, for the restore tests (DESIGN §10).

  make_hostile_tars.py OUTDIR [--outside DIR]

OUTDIR/<case>.tar for every case and OUTDIR/cases.json: [{"name", "what", "expect"}], where
expect is "refuse" (the extractor must refuse the archive: snapback exits 65 and writes
nothing, at the target or outside it) or "contain" (the archive may be restored or refused,
but nothing outside the extraction directory may change).

DIR (absolute, default /tmp/snapback-hostile-outside) is where the archives try to write:
the test creates DIR/victim there beforehand and checks afterwards that DIR is unchanged.
Entries that name system files (/etc/passwd) only link to them, never write data through
them, so a broken extractor damages nothing on the machine that runs the test.
"""
import argparse
import io
import json
import os
import sys
import tarfile


def reg(name, data=b"pwned\n", mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = mode
    ti.mtime = 1700000000
    return ti, data


def sym(name, target):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.SYMTYPE
    ti.linkname = target
    ti.mode = 0o777
    ti.mtime = 1700000000
    return ti, None


def hard(name, target):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.LNKTYPE
    ti.linkname = target
    ti.mode = 0o644
    ti.mtime = 1700000000
    return ti, None


def dirent(name, mode=0o755):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = mode
    ti.mtime = 1700000000
    return ti, None


def cases(outside):
    rel_outside = outside.lstrip("/")
    up = "../" * 24  # enough to climb to / from any extraction directory
    yield "dotdot", "a regular file '../x'", "refuse", [reg("ok.txt", b"ok\n"), reg("../x")]
    yield "dotdot-nested", "'a/../../x' climbs out through a real dir", "refuse", [
        dirent("a"), reg("a/../../x")]
    yield "dotdot-deep", "'../../...' climbing to / and into the outside dir", "refuse", [
        reg(up + rel_outside + "/dotdot-deep")]
    yield "absolute", "an absolute path '%s/absolute'" % outside, "refuse", [
        reg(outside + "/absolute")]
    yield "absolute-etc", "an absolute path '/etc/x' (a name no system has)", "refuse", [
        reg("/etc/snapback-hostile-test-x")]
    yield "symlink-root-then-file", "symlink 'lnk -> /' then a file 'lnk/<outside>/pwned'", "refuse", [
        sym("lnk", "/"), reg("lnk/" + rel_outside + "/pwned")]
    yield "symlink-out-then-file", "symlink 'lnk -> <outside>' then a file 'lnk/pwned'", "refuse", [
        sym("lnk", outside), reg("lnk/pwned")]
    yield "symlink-relative-out-then-file", "symlink 'lnk -> ../../..' then a file through it", "refuse", [
        sym("lnk", up + rel_outside), reg("lnk/pwned-relative")]
    yield "symlink-dir-then-dir", "symlink 'd -> <outside>', then a dir 'd/sub' and a file in it", "refuse", [
        sym("d", outside), dirent("d/sub"), reg("d/sub/pwned")]
    yield "hardlink-etc-passwd", "a hard link 'h' to '/etc/passwd'", "refuse", [
        hard("h", "/etc/passwd")]
    yield "hardlink-dotdot", "a hard link 'h -> ../outside'", "refuse", [
        hard("h", "../outside")]
    yield "hardlink-absolute-then-write", "a hard link 'h -> <outside>/victim', then data written to 'h'", "refuse", [
        hard("h", outside + "/victim"), reg("h", b"overwritten through a hard link\n")]
    yield "hardlink-through-symlink", "symlink 'lnk -> <outside>', hard link 'h -> lnk/victim', then data to 'h'", "refuse", [
        sym("lnk", outside), hard("h", "lnk/victim"), reg("h", b"overwritten through a symlinked hard link\n")]
    yield "pax-path-dotdot", "ustar name 'safe' overridden by a pax path '../pax-x'", "refuse", [
        ("pax", "safe", "../pax-x")]
    yield "gnu-longname-dotdot", "a GNU long name starting with '../'", "refuse", [
        ("gnu", "../" + "l" * 150)]
    yield "symlink-then-dir-same-name", "symlink 'd -> <outside>' then a directory entry 'd' (mode 0777) and a file in it", "refuse", [
        sym("d", outside), dirent("d", 0o777), reg("d/pwned")]
    yield "symlink-then-dir-alone", "symlink 'd -> <outside>' then only a directory entry 'd' (mode 0700)", "refuse", [
        sym("d", outside), dirent("d", 0o700)]
    yield "hardlink-to-symlink-then-file", "symlink 's -> <outside>', hard link 'h -> s', then a file 'h/pwned'", "refuse", [
        sym("s", outside), hard("h", "s"), reg("h/pwned")]
    yield "dotslash-symlink-then-file", "symlink './lnk -> <outside>' then a file 'lnk/pwned'", "refuse", [
        sym("./lnk", outside), reg("lnk/pwned")]
    yield "dir-then-symlink-same-name", "a directory 'd' (mode 0777) replaced by a symlink 'd -> <outside>': its deferred mode and times must not follow the link", "contain", [
        dirent("d", 0o777), sym("d", outside)]
    yield "file-over-symlink", "symlink 's -> <outside>/victim' then a regular file 's'", "contain", [
        sym("s", outside + "/victim"), reg("s", b"written over a symlink entry\n")]
    yield "symlink-absolute-alone", "a symlink to an absolute path outside (legitimate in releases)", "contain", [
        sym("etc-link", "/etc"), reg("after.txt", b"after\n")]


def write_case(path, entries):
    gnu = any(e[0] == "gnu" for e in entries if isinstance(e[0], str))
    fmt = tarfile.GNU_FORMAT if gnu else tarfile.PAX_FORMAT
    with tarfile.open(path, "w", format=fmt) as tf:
        for e in entries:
            if isinstance(e[0], str) and e[0] == "pax":
                ti, data = reg(e[1])
                ti.pax_headers = {"path": e[2]}
                tf.addfile(ti, io.BytesIO(data))
            elif isinstance(e[0], str) and e[0] == "gnu":
                ti, data = reg(e[1])
                tf.addfile(ti, io.BytesIO(data))
            else:
                ti, data = e
                tf.addfile(ti, io.BytesIO(data) if data is not None else None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--outside", default="/tmp/snapback-hostile-outside")
    a = ap.parse_args()
    if not os.path.isabs(a.outside):
        ap.error("--outside must be absolute")
    os.makedirs(a.outdir, exist_ok=True)
    listing = []
    for name, what, expect, entries in cases(a.outside.rstrip("/")):
        write_case(os.path.join(a.outdir, name + ".tar"), entries)
        listing.append({"name": name, "what": what, "expect": expect})
    with open(os.path.join(a.outdir, "cases.json"), "w") as f:
        json.dump(listing, f, indent=1)
    print("%d hostile archives in %s" % (len(listing), a.outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
