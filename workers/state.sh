#!/usr/bin/env sh
# The state role's launch profile (taskhub/worker/roles.py holds the command line). Extra
# arguments are passed to celery, e.g. `workers/state.sh --loglevel DEBUG`.
exec taskhub run state "$@"
