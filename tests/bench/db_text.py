#!/usr/bin/env python3
"""Rows for tests/bench/db.sh --data text: every text file under DIR (default /usr/share) as a row
of COPY text format (path, body, meta as JSON of its stat), COPIES times (default 1), on
stdout. Data nobody tuned for: man pages, changelogs, scripts, HTML, in many languages, unlike
pgbench's rows of blanks, which are gzip's best case."""
import json
import os
import sys


def esc(s):
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def main():
    top = sys.argv[1] if len(sys.argv) > 1 else "/usr/share"
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    out = sys.stdout
    for copy in range(copies):
        for root, _dirs, files in os.walk(top):
            for name in sorted(files):
                path = os.path.join(root, name)
                try:
                    st = os.lstat(path)
                    if not os.path.isfile(path) or os.path.islink(path) or st.st_size > 4 << 20:
                        continue
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                if b"\0" in data[:4096]:  # binary
                    continue
                body = data.decode("utf-8", "replace").replace("\0", "")
                meta = json.dumps({"size": st.st_size, "mode": st.st_mode, "mtime": int(st.st_mtime),
                                   "dir": root, "ext": os.path.splitext(name)[1], "copy": copy})
                out.write(esc(path + ("#%d" % copy if copy else "")) + "\t" + esc(body) + "\t" + esc(meta) + "\n")


if __name__ == "__main__":
    main()
