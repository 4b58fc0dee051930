"""A custom import-linter contract (used by `make imports`; see docs/architecture.md).

`public_modules`: an app may import, of another app, only its public modules (`models`,
`services`, `selectors`, `choices`, `exceptions`) and the shared contract modules listed
in the contract, never its `api/`, consumers, Celery tasks or internals. Which apps an app
may import at all is the `layers` contract's business; this one says *what* of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import grimp
from importlinter import Contract, ContractCheck, fields, output
from importlinter.application import contract_utils
from importlinter.domain import helpers


@dataclass(frozen=True, order=True)
class _Illegal:
    importer: str
    imported: str
    line_numbers: tuple[int, ...]


class PublicModulesContract(Contract):
    """Options:
    - containers: the apps (module expressions, wildcards allowed: `apps.*`);
    - public: module names, relative to an app, that other apps may import (with their
      descendants);
    - shared: absolute module names any app may import (contract modules such as
      `apps.core.events`);
    - ignore_imports, unmatched_ignore_imports_alerting: as in the built-in contracts.
    """

    type_name = "public_modules"

    containers = fields.ListField(subfield=fields.ModuleExpressionField())
    public = fields.ListField(subfield=fields.StringField())
    shared = fields.ListField(subfield=fields.StringField(), required=False)
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)
    unmatched_ignore_imports_alerting = fields.EnumField(
        contract_utils.AlertLevel, default=contract_utils.AlertLevel.ERROR
    )

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,  # type: ignore[arg-type]
            unmatched_alerting=self.unmatched_ignore_imports_alerting,  # type: ignore[arg-type]
        )
        apps = sorted(
            module.name
            for module in helpers.module_expressions_to_modules(
                graph=graph,
                expressions=self.containers,  # type: ignore[arg-type]
            )
        )
        shared: tuple[str, ...] = tuple(self.shared or ())  # type: ignore[arg-type]
        public: tuple[str, ...] = tuple(self.public)  # type: ignore[arg-type]

        def app_of(module: str) -> str | None:
            for app in apps:
                if module == app or module.startswith(app + "."):
                    return app
            return None

        def allowed(app: str, module: str) -> bool:
            if module == app:
                return True  # the package itself (an empty __init__)
            names = [f"{app}.{name}" for name in public] + list(shared)
            return any(module == name or module.startswith(name + ".") for name in names)

        illegal: list[_Illegal] = []
        for importer in sorted(graph.modules):
            importer_app = app_of(importer)
            if importer_app is None:
                continue
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                imported_app = app_of(imported)
                if imported_app in (None, importer_app):
                    continue
                assert imported_app is not None
                if allowed(imported_app, imported):
                    continue
                details = graph.get_import_details(importer=importer, imported=imported)
                illegal.append(
                    _Illegal(
                        importer=importer,
                        imported=imported,
                        line_numbers=tuple(d["line_number"] for d in details),
                    )
                )
        return ContractCheck(
            kept=not illegal,
            warnings=list(removal.warnings),
            ignored_import_count=removal.ignored_import_count,
            metadata={"illegal": illegal},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error(
            "Imports of another app's non-public modules (allowed: "
            f"{', '.join(self.public)}, and {', '.join(self.shared or ())}):",  # type: ignore[arg-type]
            bold=False,
        )
        output.new_line()
        for item in check.metadata["illegal"]:
            lines = ", ".join(map(str, item.line_numbers))
            output.print_error(f"- {item.importer} -> {item.imported} (l.{lines})", bold=False)
        output.new_line()
