"""``python -m taskhub.cli``: the ``taskhub`` command."""

from taskhub.cli.main import main

main()
