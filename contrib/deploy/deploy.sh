#!/bin/sh
# A plain shell deploy with a pre-deploy snapshot and an automatic rollback on failure.
#   usage: deploy.sh /path/to/build.tar.gz
# Assumes the Capistrano layout of the snapback config (release.root, releases/, current).
set -eu
: "${SNAPBACK_CONFIG:=/etc/snapback/shop.json}"
export SNAPBACK_CONFIG
root=/srv/shop
release=$(date -u +%Y%m%dT%H%M%SZ)

# 1. the snapshot a rollback --with-database goes back to (--wait: the hourly cron snapshot
#    may hold the lock at that moment)
snapback snapshot --tag pre-deploy --wait=600

# 2. the new release, then the switch
mkdir "$root/releases/$release"
tar -xzf "$1" -C "$root/releases/$release"
ln -sfn "releases/$release" "$root/current.new" && mv -T "$root/current.new" "$root/current"
systemctl restart shop

# 3. migrations and health; on failure go back, code and database
if ! (cd "$root/current" && ./bin/migrate) || ! curl -fsS --retry 10 --retry-delay 3 http://127.0.0.1:3000/health; then
    echo "deploy of $release failed, rolling back" >&2
    snapback rollback --to previous --with-database
    exit 1
fi
