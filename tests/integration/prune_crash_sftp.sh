#!/usr/bin/env bash
# prune_crash.sh over SFTP: the repository on a real sshd on loopback (skips, 77, without
# openssh-server). See prune_crash.sh for what is checked.
PRUNE_CRASH_SFTP=1
# shellcheck source=tests/integration/prune_crash.sh
source "$(dirname "$0")/prune_crash.sh"
