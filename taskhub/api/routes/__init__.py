"""One router per resource of the API, each included by :func:`taskhub.api.app.create_app`."""
