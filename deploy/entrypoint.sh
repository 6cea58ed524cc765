#!/bin/sh
# The storage password comes from a secret file (Docker or Kubernetes secret), never a flag:
# PGPASSWORD is what libpq reads, so the URL carries no password.
set -e
if [ -z "${PGPASSWORD:-}" ] && [ -f "${PGPASSWORD_FILE:-/run/secrets/pg_password}" ]; then
    PGPASSWORD="$(cat "${PGPASSWORD_FILE:-/run/secrets/pg_password}")"
    export PGPASSWORD
fi
if [ "${1:-}" = "dashboard" ]; then
    shift
    exec optuna-dashboard "$@"
fi
exec run-search "$@"
