#!/usr/bin/env sh
# The beat role's launch profile (taskhub/worker/roles.py holds the command line). Extra
# arguments are passed to celery, e.g. `workers/beat.sh --loglevel DEBUG`.
exec taskhub run beat "$@"
