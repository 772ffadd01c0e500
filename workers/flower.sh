#!/usr/bin/env sh
# The flower role's launch profile (taskhub/worker/roles.py holds the command line): Celery's
# monitor. Set FLOWER_BASIC_AUTH=user:password; extra arguments are passed to flower.
exec taskhub run flower "$@"
