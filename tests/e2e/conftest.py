"""Print the fault-injection table at the end of the run, whether or not ``-s`` is given."""

from __future__ import annotations

import pytest

from tests.support import faultreport


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not faultreport.RESULTS:
        return
    terminalreporter.section("fault tolerance")
    terminalreporter.write_line(faultreport.markdown_table(faultreport.RESULTS))
    for path in faultreport.JSON_PATH:
        terminalreporter.write_line(f"(as JSON: {path})")
