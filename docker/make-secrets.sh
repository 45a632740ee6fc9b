#!/bin/sh
# Make the secrets docker-compose.yaml reads, once: MinIO's root password, which the service and
# the HTCondor workers use as the S3 secret key.
set -eu
cd "$(dirname "$0")/secrets"
[ -s s3-secret ] || (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '/+=\n' > s3-secret)
echo "docker/secrets/s3-secret is ready"
