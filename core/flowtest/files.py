"""Test files on disk: finding them, reading them with line-numbered problems, and the flows beside them.

A test file (``pizza.test.yaml``) lives in the folder of the flows it tests; every flow of that folder
(``flow_files``) is loaded, so sub-flows started by ``trigger_flow`` are found. The flow under test is
the file's ``flow`` or the name before ``.test.``. A file may also be a bare list of cases. Every problem
names the file, the line and the field (JSON pointer), and names that no loaded flow declares (a state,
a flow, an intent, an integration of a fake) are errors before anything runs.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mcp_engine.flow.checks import near, pydantic_problems
from mcp_engine.flow.loader import Source, flow_files, is_test_file, read_file
from mcp_engine.flow.models import Flow
from mcp_engine.flow.problems import Problem, pointer
from mcp_engine.flow.validate import validate_data
from mcp_engine.flowtest.harness import FlowSet
from mcp_engine.flowtest.report import FileProblem
from mcp_engine.flowtest.spec import CasesBody, Fake, TestFile
from mcp_engine.registry import Registry

YAML_HINT = (
    " (inside [...], quote a message regex that holds ? , : [ ] { } or #, or list one per line after -)"
)


class TestFileLoader(yaml.SafeLoader):
    """YAML with 1.2's booleans: only true/false are, so ``user: no`` and ``user: yes`` are text."""

    __test__ = False


TestFileLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
TestFileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def find_test_files(paths: list[Path]) -> tuple[list[Path], list[FileProblem]]:
    """The test files named, and those under the folders named (recursively, but not under hidden
    folders), in path order."""
    found: list[Path] = []
    problems: list[FileProblem] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(_tests_under(path))
            if not inside:
                message = "no flow test files here (*.test.yaml, *.test.yml, *.test.json)"
                problems.append(FileProblem(file=str(path), pointer="", message=message, code="no-tests"))
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            problems.append(
                FileProblem(file=str(path), pointer="", message="no such file", code="unreadable")
            )
    return list(dict.fromkeys(found)), problems


def _tests_under(folder: Path) -> Iterator[Path]:
    """The test files under ``folder``, not looking into hidden folders (.git, .venv, ...), like pytest."""
    for root, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        yield from (Path(root) / name for name in files if is_test_file(Path(name)))


@dataclass
class Folder:
    """The valid flows of one folder, by (tenant, flow id), and the problems of the others."""

    flows: dict[tuple[str, str], tuple[dict[str, Any], Flow]] = field(default_factory=dict)
    problems: list[FileProblem] = field(default_factory=list)

    @classmethod
    def load(cls, folder: Path, registry: Registry) -> Folder:
        loaded = cls()
        for path in flow_files(folder):
            source, problem = read_file(path)
            result = validate_data(source.data, registry, source) if source is not None else None
            if result is None or result.flow is None or not result.ok:
                found = result.errors if result is not None else [problem] if problem else []
                loaded.problems += [FileProblem.of(str(path), p) for p in found]
                continue
            assert source is not None
            flow = result.flow
            key = (flow.tenant_id, flow.flow_id)
            if key in loaded.flows:
                message = (
                    f"flow '{flow.flow_id}' of tenant '{flow.tenant_id}' is declared by another file too"
                )
                loaded.problems.append(
                    FileProblem(file=str(path), pointer="/flow_id", message=message, code="duplicate-flow")
                )
                continue
            loaded.flows[key] = (source.data, flow)
        return loaded

    def flow_set(self, flow_id: str) -> FlowSet | str:
        """The flow ``flow_id`` and the other flows of its tenant, or why there is none."""
        keys = [key for key in self.flows if key[1] == flow_id]
        if len(keys) != 1:
            known = ", ".join(sorted({key[1] for key in self.flows})) or "none"
            many = f"is declared for {len(keys)} tenants" if keys else f"is not here (flows: {known})"
            return f"the flow under test '{flow_id}' {many}"
        tenant = keys[0][0]
        document, _ = self.flows[keys[0]]
        others = [doc for key, (doc, _) in self.flows.items() if key[0] == tenant and key != keys[0]]
        models = [flow for key, (_, flow) in self.flows.items() if key[0] == tenant]
        return FlowSet(document, others, models)


@dataclass
class LoadedTest:
    path: Path
    spec: TestFile
    flows: FlowSet
    source: Source
    bare: bool  # the file is a bare list of cases

    def locate(self, at: str) -> tuple[str, int | None]:
        """Where a pointer into the model (``/cases/0/...``) stands in the file: its pointer there (a bare
        list has no ``/cases``), and its line."""
        at = _in_file(at, self.bare)
        return at, self.source.line_of(at)


def _in_file(at: str, bare: bool) -> str:
    return at.removeprefix("/cases") if bare else at


def load_test(path: Path, folder: Folder) -> tuple[LoadedTest | None, list[FileProblem]]:
    source, problem = read_file(path, TestFileLoader)
    if source is None:
        if problem is not None and problem.code == "yaml-syntax":
            problem = dataclasses.replace(problem, message=problem.message + YAML_HINT)
        return None, [FileProblem.of(str(path), problem)] if problem else []
    bare = isinstance(source.data, list)
    data = {"cases": source.data} if bare else source.data

    def located(found: Problem) -> FileProblem:
        at = _in_file(found.pointer, bare)
        return FileProblem.of(str(path), Problem("error", at, found.message, found.code, source.line_of(at)))

    try:
        spec = TestFile.model_validate(data)
    except ValidationError as exc:
        return None, [located(p) for p in pydantic_problems(exc)]
    flow_id = spec.flow or path.name.split(".test.", 1)[0]
    flows = folder.flow_set(flow_id)
    if isinstance(flows, str):
        at = "/flow" if spec.flow else ""
        return None, [located(Problem("error", at, flows, "unknown-flow"))]
    problems = [located(p) for p in unknown_names(spec, flows)]
    if problems:
        return None, problems
    return LoadedTest(path, spec, flows, source, bare), []


def unknown_names(body: CasesBody, flows: FlowSet) -> Iterator[Problem]:
    """Names the cases use that no flow of the set declares: typos caught before anything runs."""
    states = {state for flow in flows.models for state in flow.states}
    intents = {intent for flow in flows.models for intent in flow.intents}
    flow_ids = {flow.flow_id for flow in flows.models}
    integrations = {name for flow in flows.models for name in flow.integrations}
    yield from _unknown_fakes(body.fakes, ("fakes",), integrations)
    for c, case in enumerate(body.cases):
        yield from _unknown_fakes(case.fakes, ("cases", c, "fakes"), integrations)
        for t, turn in enumerate(case.turns):
            at = ("cases", c, "turns", t)
            yield from _unknown_fakes(turn.fakes, (*at, "fakes"), integrations)
            for name, value, known in (
                ("state", turn.state, states),
                ("flow", turn.flow, flow_ids),
                ("intent", turn.intent, intents),
            ):
                if value is not None and value not in known:
                    message = f"no loaded flow has the {name} '{value}'{near(value, known)}"
                    yield Problem("error", pointer(*at, name), message, f"unknown-{name}")


def _unknown_fakes(fakes: list[Fake], at: tuple[str | int, ...], known: set[str]) -> Iterator[Problem]:
    for number, fake in enumerate(fakes):
        if fake.integration not in known:
            declared = ", ".join(sorted(known)) or "none"
            message = f"no loaded flow declares the integration '{fake.integration}' (declared: {declared})"
            yield Problem("error", pointer(*at, number, "integration"), message, "unknown-integration")
