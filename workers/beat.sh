#!/usr/bin/env sh
# The beat role's launch profile (taskhub/roles.py holds the command line). Extra
# arguments are passed to celery, e.g. `workers/beat.sh --loglevel DEBUG`.
exec taskhub run beat "$@"
