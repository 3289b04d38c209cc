"""Marks and ``--quick``; a plugin of tests/conftest.py.

Tests are marked by the real servers they use (``docker``, ``ray``, ``ssh``, ``postgres``, ``browser``) and
``e2e`` when they run mltrain as a process, found from their fixtures, so ``-m`` selects them; ``--quick``
(``scripts/test.sh --quick``) leaves them out, and with them ``slow`` tests (builds).
"""

from __future__ import annotations

from typing import Any

import pytest

# a fixture a test uses (directly or through other fixtures) -> the marker it gets
FIXTURE_MARKS = {
    "docker_engine": "docker",
    "ray_cluster": "ray",
    "ssh_pool": "ssh",
    "pg_url": "postgres",
    "page": "browser",
    "project": "e2e",  # runs mltrain or its CLI as a process in a project folder
    "launcher": "e2e",  # scoring servers as processes (tests/serving)
    "trained": "e2e",  # a model trained by a run, deployed (tests/deploy)
    "endpoint": "e2e",  # a deployment (tests/deploy_conformance.py)
}
# tests marked e2e though no fixture says so: Hydra's integration suites run each app as a process,
# and these tests (node id prefixes) start processes or build environments themselves
E2E_SUITES = ("IntegrationTestSuite",)
E2E_TESTS = (
    "tests/test_readme.py::",
    "tests/test_config.py::test_user_project_from_a_wheel_in_a_clean_venv",
    "tests/ui/test_abuse.py::test_a_series_of_millions_of_points_is_downsampled_on_the_server",
)
# what `--quick` (scripts/test.sh --quick) leaves out: servers, builds and whole runs
NOT_QUICK = ("docker", "ray", "ssh", "postgres", "browser", "slow", "e2e")
QUICK_TEST_S = 5.0  # a test --quick keeps that takes longer is named at the end of the run


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick",
        action="store_true",
        help=f"only the tests that start no server, build nothing and run no mltrain process (not {NOT_QUICK})",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        marks = {mark for fixture, mark in FIXTURE_MARKS.items() if fixture in used}
        suites = {base.__name__ for base in getattr(getattr(item, "cls", None), "__mro__", ())}
        if suites & set(E2E_SUITES) or item.nodeid.startswith(E2E_TESTS):
            marks.add("e2e")
        for mark in sorted(marks):
            item.add_marker(mark)


class QuickSubset:
    """``--quick``: deselects what NOT_QUICK names, once every conftest has marked its tests; at the end of any
    run, names the tests --quick keeps that took over QUICK_TEST_S (so the subset stays quick: mark them)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.slow: dict[str, float] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if not self.config.getoption("quick"):
            return
        left_out = [item for item in items if any(item.get_closest_marker(m) for m in NOT_QUICK)]
        if left_out:
            self.config.hook.pytest_deselected(items=left_out)
            dropped = {id(item) for item in left_out}
            items[:] = [item for item in items if id(item) not in dropped]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not any(m in report.keywords for m in NOT_QUICK):
            self.slow[report.nodeid] = self.slow.get(report.nodeid, 0.0) + report.duration

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        slow = sorted(((s, n) for n, s in self.slow.items() if s > QUICK_TEST_S), reverse=True)
        if slow:
            terminalreporter.write_sep("=", f"in --quick but over {QUICK_TEST_S:.0f} s: mark them slow")
            for seconds, nodeid in slow:
                terminalreporter.write_line(f"{seconds:6.1f}s {nodeid}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(QuickSubset(config), "mltrain-quick-subset")
