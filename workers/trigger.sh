#!/usr/bin/env sh
# The trigger role's launch profile (taskhub/worker/roles.py holds the command line). Extra
# arguments are passed to celery, e.g. `workers/trigger.sh --loglevel DEBUG`.
exec taskhub run trigger "$@"
