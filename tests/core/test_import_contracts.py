"""The custom import contract (config/import_contracts.py) on a small made-up graph, and
the project's own contracts on the real code."""

import subprocess
import sys
from pathlib import Path

import grimp
from django.conf import settings
from importlinter import fields
from importlinter.application.contract_utils import AlertLevel

from config.import_contracts import PublicModulesContract


def _graph(*imports: tuple[str, str]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for module in ("apps", "apps.core", "apps.users", "apps.agents"):
        graph.add_module(module)
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported, line_number=3, line_contents="x")
    return graph


def _contract() -> PublicModulesContract:
    # Fields set directly: import-linter's option validation walks dir(cls), which trips
    # over a zope.interface attribute that the test process (daphne/twisted) adds.
    contract = PublicModulesContract.__new__(PublicModulesContract)
    contract.name = "public"
    contract.containers = [fields.ModuleExpressionField().parse("apps.*")]
    contract.public = ["models", "services"]
    contract.shared = ["apps.core.events"]
    contract.ignore_imports = None
    contract.unmatched_ignore_imports_alerting = AlertLevel.ERROR
    return contract


def test_public_and_shared_modules_and_the_own_app_are_allowed():
    graph = _graph(
        ("apps.agents.services", "apps.users.models"),
        ("apps.agents.services", "apps.users.services"),
        ("apps.agents.engine", "apps.core.events"),
        ("apps.agents.api.views", "apps.agents.tasks"),  # inside its own app
        ("apps.agents.services", "apps.users"),  # the package itself
    )
    assert _contract().check(graph, verbose=False).kept is True


def test_another_apps_api_tasks_or_internals_break_the_contract():
    graph = _graph(
        ("apps.agents.services", "apps.users.models"),
        ("apps.agents.services", "apps.users.tasks"),
        ("apps.agents.engine", "apps.users.api.views"),
        ("apps.agents.engine", "apps.core.eventsource"),  # a prefix is not the module
    )
    check = _contract().check(graph, verbose=False)
    assert check.kept is False
    assert [(i.importer, i.imported, i.line_numbers) for i in check.metadata["illegal"]] == [
        ("apps.agents.engine", "apps.core.eventsource", (3,)),
        ("apps.agents.engine", "apps.users.api.views", (3,)),
        ("apps.agents.services", "apps.users.tasks", (3,)),
    ]


def test_the_project_keeps_its_import_contracts():
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert "0 broken" in done.stdout
