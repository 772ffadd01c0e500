"""taskhub: a Celery-based scheduler that fires HTTP triggers.

The Celery app lives in ``taskhub.celery`` so that ``celery -A taskhub`` finds it
while the pure modules (``schedules``, ``retry_policy``, ``chunking``) import nothing
of Celery.
"""
