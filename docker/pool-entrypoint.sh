#!/bin/sh
# Start the HTCondor mini pool and, once its signing key exists, give the service its IDTOKEN.
set -eu

# Jobs run `docker` as tes-cts: let it use the host's engine socket.
if [ -S /var/run/docker.sock ]; then
    gid=$(stat -c %g /var/run/docker.sock)
    getent group "$gid" >/dev/null || groupadd --gid "$gid" hostdocker
    usermod --append --groups "$(getent group "$gid" | cut -d: -f1)" tes-cts
fi
mkdir -p /var/lib/tes-cts-execute /run/condor-tokens
chown condor:condor /var/lib/tes-cts-execute
chmod 0755 /var/lib/tes-cts-execute

condor_master -f &
master=$!
trap 'kill -TERM "$master"; wait "$master"' TERM INT

# The collector makes the pool's signing key on its first start (kept in a volume).
for _ in $(seq 120); do
    [ -s /etc/condor/passwords.d/POOL ] && break
    sleep 1
done
if [ ! -s /run/condor-tokens/tes-cts ]; then
    condor_token_create -identity tes-cts@tes-cts.local -key POOL > /run/condor-tokens/tes-cts.new
    chmod 0444 /run/condor-tokens/tes-cts.new
    mv /run/condor-tokens/tes-cts.new /run/condor-tokens/tes-cts
fi
wait "$master"
