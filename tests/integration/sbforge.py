#!/usr/bin/env python3
"""A second, independent implementation of the object format (docs/FORMAT.md), for tests only.

It is written from the spec, in Python over libsodium and libzstd through ctypes, so it also
checks that the spec says enough to read and write snapback's objects. It lets the tests put
into a repository what snapback itself never writes: hostile tar archives, objects cut on a
chunk boundary with a manifest that agrees, objects without TAG_FINAL.

  sbforge.py open KEYFILE OBJECT [--raw]         plaintext (decompressed; --raw: the zstd
                                                 stream) to stdout
  sbforge.py seal KEYFILE IN OUT [--chunk N] [--no-final] [--stored]
                                                 IN (- = stdin) -> object OUT; --stored skips
                                                 zstd (the plaintext must then be zstd already)
  sbforge.py snapshot --key K --repo R --app A [--release NAME=TAR] [--shared PATH=TAR]...
                     [--age SECONDS]
                                                 writes the objects and a manifest, prints the id
  sbforge.py remanifest --key K --repo R --app A ID
                                                 re-reads the manifest, records the present size
                                                 and BLAKE2b of each object, writes it back
"""
import argparse
import base64
import ctypes
import ctypes.util
import hashlib
import json
import os
import random
import sys
import tarfile
import time

MAGIC = b"SNAPBK\x00\x01"
HEADER_LEN = 111
SEALED_HEADER_LEN = 119  # key mode 2: 80 bytes of crypto_box_seal instead of 72 of secretbox
ABYTES = 17
DEFAULT_CHUNK = 1 << 20


def load(names):
    for n in names:
        try:
            return ctypes.CDLL(n)
        except OSError:
            pass
    found = ctypes.util.find_library(names[0].split(".")[0][3:])
    if found:
        return ctypes.CDLL(found)
    sys.exit("sbforge: cannot load any of %s" % ", ".join(names))


sodium = load(["libsodium.so.23", "libsodium.so"])
zstd = load(["libzstd.so.1", "libzstd.so"])
if sodium.sodium_init() < 0:
    sys.exit("sbforge: sodium_init failed")

ull = ctypes.c_ulonglong
sodium.crypto_secretstream_xchacha20poly1305_statebytes.restype = ctypes.c_size_t
STATE_BYTES = sodium.crypto_secretstream_xchacha20poly1305_statebytes()
TAG_MESSAGE = 0
TAG_FINAL = 3
zstd.ZSTD_compressBound.restype = ctypes.c_size_t
zstd.ZSTD_compressBound.argtypes = [ctypes.c_size_t]
zstd.ZSTD_compress.restype = ctypes.c_size_t
zstd.ZSTD_compress.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                               ctypes.c_int]
zstd.ZSTD_isError.argtypes = [ctypes.c_size_t]
zstd.ZSTD_createDStream.restype = ctypes.c_void_p
zstd.ZSTD_freeDStream.argtypes = [ctypes.c_void_p]
zstd.ZSTD_initDStream.argtypes = [ctypes.c_void_p]


class ZBuf(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("size", ctypes.c_size_t), ("pos", ctypes.c_size_t)]


zstd.ZSTD_decompressStream.restype = ctypes.c_size_t
zstd.ZSTD_decompressStream.argtypes = [ctypes.c_void_p, ctypes.POINTER(ZBuf), ctypes.POINTER(ZBuf)]


class SealedKey(bytes):
    """A recipient's secret key (snapback-secret-v1): reads key mode 2 objects."""


def read_key(path):
    lines = open(path, "rb").read().split(b"\n")
    if lines[0] not in (b"snapback-key-v1", b"snapback-secret-v1"):
        sys.exit("sbforge: %s is not a snapback-key-v1 or snapback-secret-v1 file" % path)
    key = base64.b64decode(lines[1])
    assert len(key) == 32
    return SealedKey(key) if lines[0] == b"snapback-secret-v1" else key


def kdf(key, n, subkey_id):
    out = ctypes.create_string_buffer(n)
    sodium.crypto_kdf_derive_from_key(out, ctypes.c_size_t(n), ctypes.c_uint64(subkey_id),
                                      b"snapback", key)
    return out.raw


def zstd_compress(data, level=3):
    cap = zstd.ZSTD_compressBound(len(data))
    out = ctypes.create_string_buffer(cap)
    n = zstd.ZSTD_compress(out, cap, data, len(data), level)
    if zstd.ZSTD_isError(n):
        sys.exit("sbforge: ZSTD_compress failed")
    return out.raw[:n]


def zstd_decompress(data):
    ds = zstd.ZSTD_createDStream()
    zstd.ZSTD_initDStream(ds)
    src = ctypes.create_string_buffer(data, len(data))
    inb = ZBuf(ctypes.cast(src, ctypes.c_void_p), len(data), 0)
    chunks = []
    outcap = 1 << 20
    dst = ctypes.create_string_buffer(outcap)
    last = 0
    while True:
        outb = ZBuf(ctypes.cast(dst, ctypes.c_void_p), outcap, 0)
        last = zstd.ZSTD_decompressStream(ds, ctypes.byref(outb), ctypes.byref(inb))
        if zstd.ZSTD_isError(last):
            zstd.ZSTD_freeDStream(ds)
            raise ValueError("zstd: corrupt stream")
        chunks.append(dst.raw[:outb.pos])
        if inb.pos == inb.size and outb.pos < outcap:
            break
    zstd.ZSTD_freeDStream(ds)
    if last != 0:
        raise ValueError("zstd: stream ends inside a frame")
    return b"".join(chunks)


def seal(key, plaintext, chunk=DEFAULT_CHUNK, final=True):
    """Stored bytes of an object whose stream plaintext is `plaintext` (already zstd)."""
    wrap = kdf(key, 32, 1)
    file_key = os.urandom(32)
    nonce = os.urandom(24)
    boxed = ctypes.create_string_buffer(48)
    sodium.crypto_secretbox_easy(boxed, file_key, ull(32), nonce, wrap)
    state = ctypes.create_string_buffer(STATE_BYTES)
    ss_header = ctypes.create_string_buffer(24)
    sodium.crypto_secretstream_xchacha20poly1305_init_push(state, ss_header, file_key)
    header = MAGIC + bytes([1, 1, 1]) + chunk.to_bytes(4, "little") + nonce + boxed.raw + ss_header.raw
    assert len(header) == HEADER_LEN
    out = [header]
    pieces = [plaintext[i:i + chunk] for i in range(0, len(plaintext), chunk)] or [b""]
    for idx, piece in enumerate(pieces):
        last = idx == len(pieces) - 1
        tag = TAG_FINAL if (last and final) else TAG_MESSAGE
        c = ctypes.create_string_buffer(len(piece) + ABYTES)
        clen = ull(0)
        ad = header if idx == 0 else None
        sodium.crypto_secretstream_xchacha20poly1305_push(
            state, c, ctypes.byref(clen), piece, ull(len(piece)), ad, ull(len(ad) if ad else 0),
            ctypes.c_ubyte(tag))
        out.append(c.raw[:clen.value])
    return b"".join(out)


def open_object(key, stored, raw=False):
    """The decompressed plaintext of an object, checked as FORMAT.md's reading rules say (raw:
    the zstd stream, not decompressed)."""
    mode = 2 if isinstance(key, SealedKey) else 1
    hlen = SEALED_HEADER_LEN if mode == 2 else HEADER_LEN
    if len(stored) < hlen or stored[:8] != MAGIC or stored[8:11] != bytes([1, 1, mode]):
        raise ValueError("bad header (or an object of the other key mode)")
    chunk = int.from_bytes(stored[11:15], "little")
    if chunk < 4096 or chunk > (16 << 20) or chunk & (chunk - 1):
        raise ValueError("bad chunk size")
    header = stored[:hlen]
    file_key = ctypes.create_string_buffer(32)
    if mode == 2:
        pub = ctypes.create_string_buffer(32)
        sodium.crypto_scalarmult_base(pub, bytes(key))
        if sodium.crypto_box_seal_open(file_key, stored[15:95], ull(80), pub, bytes(key)) != 0:
            raise ValueError("wrong secret key or damaged header")
    elif sodium.crypto_secretbox_open_easy(file_key, stored[39:87], ull(48), stored[15:39],
                                           kdf(key, 32, 1)) != 0:
        raise ValueError("wrong key or damaged header")
    state = ctypes.create_string_buffer(STATE_BYTES)
    if sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, stored[hlen - 24:hlen],
                                                              file_key) != 0:
        raise ValueError("bad secretstream header")
    pos, out, first, final = hlen, [], True, False
    while pos < len(stored):
        if final:
            raise ValueError("data after the final chunk")
        msg = stored[pos:pos + chunk + ABYTES]
        pos += len(msg)
        m = ctypes.create_string_buffer(max(len(msg) - ABYTES, 1))
        mlen, tag = ull(0), ctypes.c_ubyte(0)
        ad = header if first else None
        if sodium.crypto_secretstream_xchacha20poly1305_pull(
                state, m, ctypes.byref(mlen), ctypes.byref(tag), msg, ull(len(msg)), ad,
                ull(len(ad) if ad else 0)) != 0:
            raise ValueError("chunk at byte %d fails authentication" % (pos - len(msg)))
        if len(msg) < chunk + ABYTES and tag.value != TAG_FINAL:
            raise ValueError("short chunk without TAG_FINAL")
        final = tag.value == TAG_FINAL
        first = False
        out.append(m.raw[:mlen.value])
    if not final:
        raise ValueError("truncated: no TAG_FINAL chunk")
    return b"".join(out) if raw else zstd_decompress(b"".join(out))


def digest(stored):
    return {"stored_size": len(stored), "blake2b": hashlib.blake2b(stored, digest_size=32).hexdigest()}


def write_atomic(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".forge-tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def new_id(repo, app):
    t = time.time()
    while True:
        sid = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t)) + "-%04x" % random.randrange(1 << 16)
        if not os.path.exists(os.path.join(repo, app, "snapshots", sid + ".manifest")):
            return sid


def cmd_snapshot(a):
    key = read_key(a.key)
    sid = a.id or new_id(a.repo, a.app)
    base = os.path.join(a.repo, a.app)
    m = {"format": 1, "id": sid, "app": a.app, "host": "sbforge",
         "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - a.age)),
         "duration_s": 0.0,
         "tag": a.tag, "tool_version": "0.1.0", "release": None, "shared": [], "databases": [],
         "objects": []}

    def store(name, tar_path):
        plain = open(tar_path, "rb").read()
        stored = seal(key, zstd_compress(plain), final=not a.no_final)
        write_atomic(os.path.join(base, name), stored)
        m["objects"].append(dict(name=name, plain_size=len(plain), **digest(stored)))

    if a.release:
        rname, tar = a.release.split("=", 1)
        fpr = hashlib.blake2b(open(tar, "rb").read(), digest_size=16).hexdigest()
        obj = "releases/%s-%s.snpb" % (rname, fpr)
        store(obj, tar)
        with tarfile.open(tar) as tf:
            entries = len(tf.getmembers())
        m["release"] = {"name": rname, "fingerprint": fpr, "object": obj, "entries": entries,
                        "reused": False}
    for idx, spec in enumerate(a.shared or []):
        path, tar = spec.split("=", 1)
        obj = "data/%s/shared-%d.snpb" % (sid, idx)
        store(obj, tar)
        m["shared"].append({"path": path, "object": obj})
    manifest = seal(key, zstd_compress(json.dumps(m).encode()))
    write_atomic(os.path.join(base, "snapshots", sid + ".manifest"), manifest)
    print(sid)


def cmd_remanifest(a):
    key = read_key(a.key)
    base = os.path.join(a.repo, a.app)
    path = os.path.join(base, "snapshots", a.id + ".manifest")
    m = json.loads(open_object(key, open(path, "rb").read()))
    for o in m["objects"]:
        o.update(digest(open(os.path.join(base, o["name"]), "rb").read()))
    os.unlink(path)
    write_atomic(path, seal(key, zstd_compress(json.dumps(m).encode())))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("open")
    p.add_argument("keyfile")
    p.add_argument("object")
    p.add_argument("--raw", action="store_true")
    p = sub.add_parser("seal")
    p.add_argument("keyfile")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK)
    p.add_argument("--no-final", action="store_true")
    p.add_argument("--stored", action="store_true")
    p = sub.add_parser("snapshot")
    for opt in ("--key", "--repo", "--app"):
        p.add_argument(opt, required=True)
    p.add_argument("--id")
    p.add_argument("--age", type=int, default=0, help="created_at this many seconds ago")
    p.add_argument("--tag")
    p.add_argument("--release")
    p.add_argument("--shared", action="append")
    p.add_argument("--no-final", action="store_true")
    p = sub.add_parser("remanifest")
    for opt in ("--key", "--repo", "--app"):
        p.add_argument(opt, required=True)
    p.add_argument("id")
    a = ap.parse_args()

    if a.cmd == "open":
        try:
            sys.stdout.buffer.write(open_object(read_key(a.keyfile), open(a.object, "rb").read(),
                                                a.raw))
        except ValueError as e:
            print("sbforge: %s: %s" % (a.object, e), file=sys.stderr)
            return 65
    elif a.cmd == "seal":
        data = sys.stdin.buffer.read() if a.input == "-" else open(a.input, "rb").read()
        plain = data if a.stored else zstd_compress(data)
        write_atomic(os.path.abspath(a.output), seal(read_key(a.keyfile), plain, a.chunk,
                                                     final=not a.no_final))
    elif a.cmd == "snapshot":
        cmd_snapshot(a)
    else:
        cmd_remanifest(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
