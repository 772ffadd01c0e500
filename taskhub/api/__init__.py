"""The REST API (FastAPI): ``app`` builds it; ``deps``, ``params`` and ``schemas`` are
what the routes share; ``routes`` holds one router per resource."""
