"""Helpers the tests share: real processes and targets, the API harness, the example task.

Nothing here is collected as a test; test modules import from the defining module
(``from tests.support.api import Api``), never from another test module.
"""
