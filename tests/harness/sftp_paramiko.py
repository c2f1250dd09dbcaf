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


class Handle(SFTPHandle):
    def stat(self):
        try:
            return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as e:
            return status(e)

    def chattr(self, attr):
        try:
            apply_attrs(self.filename, attr)
            return SFTP_OK
        except OSError as e:
            return status(e)


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


class Files(SFTPServerInterface):
    """The real filesystem, absolute paths as they come."""

    def canonicalize(self, path):
        return os.path.normpath(os.path.join("/", path))

    def list_folder(self, path):
        try:
            out = []
            for name in os.listdir(path):
                attr = SFTPAttributes.from_stat(os.lstat(os.path.join(path, name)))
                attr.filename = name
                out.append(attr)
            return out
        except OSError as e:
            return status(e)

    def stat(self, path):
        try:
            return SFTPAttributes.from_stat(os.stat(path))
        except OSError as e:
            return status(e)

    def lstat(self, path):
        try:
            return SFTPAttributes.from_stat(os.lstat(path))
        except OSError as e:
            return status(e)

    def open(self, path, flags, attr):
        try:
            mode = attr.st_mode & 0o7777 if attr._flags & attr.FLAG_PERMISSIONS else 0o666
            fd = os.open(path, flags | getattr(os, "O_BINARY", 0), mode)
        except OSError as e:
            return status(e)
        if flags & os.O_WRONLY:
            fmode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            fmode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            fmode = "rb"
        try:
            f = os.fdopen(fd, fmode)
        except OSError as e:
            return status(e)
        h = Handle(flags)
        h.filename = path
        h.readfile = f
        h.writefile = f
        return h

    def remove(self, path):
        try:
            os.remove(path)
        except OSError as e:
            return status(e)
        return SFTP_OK

    def rename(self, oldpath, newpath):
        # SFTP v3: an existing target is an error (OpenSSH does the same with link+unlink)
        if os.path.lexists(newpath):
            return status(OSError(errno.EEXIST, "exists"))
        try:
            os.rename(oldpath, newpath)
        except OSError as e:
            return status(e)
        return SFTP_OK

    def posix_rename(self, oldpath, newpath):
        try:
            os.rename(oldpath, newpath)
        except OSError as e:
            return status(e)
        return SFTP_OK

    def mkdir(self, path, attr):
        try:
            mode = attr.st_mode & 0o7777 if attr._flags & attr.FLAG_PERMISSIONS else 0o777
            os.mkdir(path, mode)
        except OSError as e:
            return status(e)
        return SFTP_OK

    def rmdir(self, path):
        try:
            os.rmdir(path)
        except OSError as e:
            return status(e)
        return SFTP_OK

    def chattr(self, path, attr):
        try:
            apply_attrs(path, attr)
        except OSError as e:
            return status(e)
        return SFTP_OK

    def readlink(self, path):
        try:
            return os.readlink(path)
        except OSError as e:
            return status(e)

    def symlink(self, target_path, path):
        try:
            os.symlink(target_path, path)
        except OSError as e:
            return status(e)
        return SFTP_OK


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
    args = ap.parse_args()
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
