#!/usr/bin/python3
"""An SFTP server that is not OpenSSH, for tests/integration/sftp_paramiko.sh: paramiko's
server side (SFTP version 3), serving the real filesystem on 127.0.0.1 to one public key.

  sftp_paramiko.py --host-key FILE --authorized-key FILE.pub --port-file FILE [--log FILE]

It differs from OpenSSH's sftp-server where other servers do: no fsync@openssh.com, a plain
rename that refuses an existing target (SFTP v3; posix-rename@openssh.com is offered, as
paramiko does), its own status codes and messages, and directory listings in one batch.
Writes the port it listens on to --port-file once it accepts connections; runs until killed.
"""
import argparse
import errno
import logging
import os
import socket
import sys
import threading

import paramiko
from paramiko import SFTPAttributes, SFTPHandle, SFTPServer, SFTPServerInterface
from paramiko.sftp import SFTP_OK


def status(err):
    return SFTPServer.convert_errno(err.errno)


def attempt(fn, *args):
    """fn(*args): what it returns (SFTP_OK for None), or the SFTP status of its OSError."""
    try:
        r = fn(*args)
    except OSError as e:
        return status(e)
    return SFTP_OK if r is None else r


def attrs_of(stat_fn, path):
    return attempt(lambda: SFTPAttributes.from_stat(stat_fn(path)))


def mode_of(attr, default):
    return attr.st_mode & 0o7777 if attr._flags & attr.FLAG_PERMISSIONS else default


NO_FSTAT = False  # --no-fstat: refuse FSTAT on open handles, as some servers do


class Handle(SFTPHandle):
    def stat(self):
        if NO_FSTAT:
            return paramiko.sftp.SFTP_OP_UNSUPPORTED
        return attempt(lambda: SFTPAttributes.from_stat(os.fstat(self.readfile.fileno())))

    def chattr(self, attr):
        return attempt(apply_attrs, self.filename, attr)


def apply_attrs(path, attr):
    if attr._flags & attr.FLAG_PERMISSIONS:
        os.chmod(path, attr.st_mode & 0o7777)
    if attr._flags & attr.FLAG_UIDGID:
        os.chown(path, attr.st_uid, attr.st_gid)
    if attr._flags & attr.FLAG_AMTIME:
        os.utime(path, (attr.st_atime, attr.st_mtime))
    if attr._flags & attr.FLAG_SIZE:
        with open(path, "r+b") as f:
            f.truncate(attr.st_size)


def listing(path):
    out = []
    for name in os.listdir(path):
        attr = SFTPAttributes.from_stat(os.lstat(os.path.join(path, name)))
        attr.filename = name
        out.append(attr)
    return out


def strict_rename(oldpath, newpath):
    # SFTP v3: an existing target is an error (OpenSSH does the same with link+unlink)
    if os.path.lexists(newpath):
        raise OSError(errno.EEXIST, "exists")
    os.rename(oldpath, newpath)


class Files(SFTPServerInterface):
    """The real filesystem, absolute paths as they come."""

    def canonicalize(self, path):
        return os.path.normpath(os.path.join("/", path))

    def list_folder(self, path):
        return attempt(listing, path)

    def stat(self, path):
        return attrs_of(os.stat, path)

    def lstat(self, path):
        return attrs_of(os.lstat, path)

    def open(self, path, flags, attr):
        try:  # not attempt(): a descriptor and a status are both ints
            fd = os.open(path, flags | getattr(os, "O_BINARY", 0), mode_of(attr, 0o666))
        except OSError as e:
            return status(e)
        if flags & os.O_WRONLY:
            fmode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            fmode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            fmode = "rb"
        f = os.fdopen(fd, fmode)
        h = Handle(flags)
        h.filename = path
        h.readfile = f
        h.writefile = f
        return h

    def remove(self, path):
        return attempt(os.remove, path)

    def rename(self, oldpath, newpath):
        return attempt(strict_rename, oldpath, newpath)

    def posix_rename(self, oldpath, newpath):
        return attempt(os.rename, oldpath, newpath)

    def mkdir(self, path, attr):
        return attempt(os.mkdir, path, mode_of(attr, 0o777))

    def rmdir(self, path):
        return attempt(os.rmdir, path)

    def chattr(self, path, attr):
        return attempt(apply_attrs, path, attr)

    def readlink(self, path):
        return attempt(os.readlink, path)

    def symlink(self, target_path, path):
        return attempt(os.symlink, target_path, path)


class Auth(paramiko.ServerInterface):
    def __init__(self, allowed):
        self.allowed = allowed

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if key.get_name() == self.allowed[0] and key.get_base64() == self.allowed[1]:
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else \
            paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


def serve(conn, host_key, allowed):
    t = paramiko.Transport(conn)
    t.add_server_key(host_key)
    t.set_subsystem_handler("sftp", SFTPServer, Files)
    try:
        t.start_server(server=Auth(allowed))
    except Exception as e:  # a client that hangs up during the handshake
        logging.info("handshake failed: %s", e)
        return
    t.join()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host-key", required=True)
    ap.add_argument("--authorized-key", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    ap.add_argument("--no-fstat", action="store_true")
    args = ap.parse_args()
    global NO_FSTAT
    NO_FSTAT = args.no_fstat
    if args.log:
        logging.basicConfig(filename=args.log, level=logging.INFO)
    host_key = None
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            host_key = kind.from_private_key_file(args.host_key)
            break
        except paramiko.SSHException:
            continue
    if host_key is None:
        sys.exit("cannot read the host key %s" % args.host_key)
    with open(args.authorized_key) as f:
        kind, b64 = f.read().split()[:2]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % sock.getsockname()[1])
    os.rename(tmp, args.port_file)
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve, args=(conn, host_key, (kind, b64)), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
