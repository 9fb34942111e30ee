"""pytest plugin for the mutation runner: records the exception type of every failing test phase.

Loaded with `-p tests.mutation.plugin`; writes one JSON line per failure to $MUTANT_REPORT.
"""

import json
import os

import pytest


def _record(nodeid: str, kind: str, message: str) -> None:
    path = os.environ.get("MUTANT_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"test": nodeid, "type": kind, "message": message[:200]}) + "\n")


def _is_check(excinfo: pytest.ExceptionInfo) -> bool:
    """An assertion of the test failed: assert, pytest.approx, np.testing, pytest.raises' match or DID NOT RAISE."""
    from _pytest.outcomes import Failed

    return issubclass(excinfo.type, AssertionError | Failed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None:
        kind = "assertion" if call.when == "call" and _is_check(call.excinfo) else "crash"
        _record(item.nodeid, kind, f"{call.excinfo.type.__name__}: {call.excinfo.value}")
    elif report.failed:  # e.g. an XPASS(strict): the test's declared expectation no longer holds
        _record(item.nodeid, "assertion", str(report.longrepr))


def pytest_collectreport(report):
    if report.failed:
        _record(report.nodeid, "crash", f"collection failed: {str(report.longrepr).splitlines()[-1:]}")
