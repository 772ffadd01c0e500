"""Where ``celery -A taskhub`` finds the app, by Celery's convention (``proj/celery.py``);
it is built in :mod:`taskhub.worker.celery_app`."""

from taskhub.worker.celery_app import app

__all__ = ["app"]
