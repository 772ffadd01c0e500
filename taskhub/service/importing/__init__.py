"""Moving schedules over from celery beat, django-celery-beat and redbeat, and keeping
tasks declared in a Celery app's code in step with it (``taskhub sync``).

Each source's reader turns its entries into :class:`~.entries.Entry` values: a task
definition in the API's shape (a Celery target), or a refusal that says why the entry
cannot be carried over. :mod:`.plan` compares them with the tenant's tasks by name and
applies the difference through the same service functions the API uses.
"""
