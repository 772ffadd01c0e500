"""taskhub: a Celery-based scheduler that fires HTTP triggers.

Packages by layer, each importing only the ones below it (checked by import-linter):
``api``, ``cli`` and ``worker`` (the edges) over ``service`` (what they call), over
``engine`` (discovery, staging, fan-out, firing, write-back), over ``observability``,
over ``db`` (the one SQL layer), over ``core`` (pure rules and values). The Celery app is
found by ``celery -A taskhub`` in ``taskhub.celery``, by Celery's convention.
"""
