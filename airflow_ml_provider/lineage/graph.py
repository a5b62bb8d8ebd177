"""The upstream lineage graph of a model version or a dataset, built from step records.

Pure: :func:`build_graph` reads records, model versions and aliases through a :class:`RecordSource`
(MLflow in ``airflow-ml lineage``, records parsed from their JSON in tests) and does no I/O of its own; the
renderers turn the graph into text, JSON or Graphviz DOT.

The walk, from the target upstream:

- a dataset (by URI and fingerprint) is produced by the step run whose record lists that fingerprint
  as an output: the run named by the consumer (``producer_run_id`` in its input, or the model
  version's ``airflow_ml.evidence.featurize`` tag) when its record confirms it, else the newest run
  the source finds; a dataset nobody produced is a source (the raw data);
- a model version is produced by its training run (tag ``airflow_ml.training_run_id``);
- a step run consumes its record's inputs and, unless it trained it, its model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_ml_provider.exceptions import AirflowMLError
from airflow_ml_provider.model.reference import MODELS_SCHEME, ModelAlias, ModelRef, parse_model_uri
from airflow_ml_provider.records.json_safe import short_text
from airflow_ml_provider.records.step_record import RecordError, StepRecord
from airflow_ml_provider.records.tags import TAG_MODEL_FINGERPRINT, TAG_TRAINING_RUN, evidence_tag

#: Steps whose record's ``model`` is their output rather than their input.
MODEL_PRODUCING_STEPS = frozenset({"train"})
#: Record fields shown elsewhere or too large for a lineage node.
_RECORD_FIELDS_LEFT_OUT = frozenset({"results", "returned", "schema_version", "inputs", "outputs"})
_ENTRY_FIELDS = ("role", "uri", "fingerprint", "rows", "size_bytes")


class LineageError(AirflowMLError, ValueError):
    """The target cannot be understood or found; the message says which and why."""


@dataclass(frozen=True)
class Target:
    """What to trace: a model version, a model alias, or a file (with its content fingerprint)."""

    kind: str  # "version" | "alias" | "file"
    text: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    path: str | None = None
    fingerprint: str | None = None


def parse_target(text: str) -> Target:
    """``models:/<name>/<version>``, ``models:/<name>@<alias>``, or anything else as a file path."""
    if not text.startswith(MODELS_SCHEME):
        return Target(kind="file", text=text, path=text)
    parsed = parse_model_uri(text)
    if isinstance(parsed, ModelAlias):
        return Target(kind="alias", text=text, name=parsed.name, alias=parsed.alias)
    if isinstance(parsed, ModelRef):
        return Target(kind="version", text=text, name=parsed.name, version=parsed.version)
    raise LineageError(
        f"{text!r} is not a model reference: expected models:/<name>/<version> or models:/<name>@<alias>"
    )


class RecordSource(Protocol):
    """Where the walk reads from. Every method answers None / [] for "not there", never raises for it;
    a record that is there but does not parse raises :class:`RecordError` (the walk reports it)."""

    def record(self, run_id: str) -> StepRecord | None:
        """The step record of an MLflow run."""

    def model_version(self, name: str, version: str) -> Mapping[str, Any] | None:
        """``{"name", "version", "tags", "aliases", "run_id"}`` of a registered model version."""

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version an alias points to."""

    def producers(self, fingerprint: str) -> list[str]:
        """MLflow run ids of step runs that may have written this content, newest first."""


class InMemorySource:
    """A :class:`RecordSource` over records (or their JSON, parsed strictly) and model versions
    (tests, exported records)."""

    def __init__(
        self,
        records: Iterable[StepRecord | Mapping[str, Any]] = (),
        versions: Iterable[Mapping[str, Any]] = (),
        aliases: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        parsed = [r if isinstance(r, StepRecord) else StepRecord.from_dict(r) for r in records]
        self.records = {r.mlflow_run_id: r for r in parsed}
        self.versions = {(v["name"], str(v["version"])): v for v in versions}
        self.aliases = {k: str(v) for k, v in (aliases or {}).items()}

    def record(self, run_id: str) -> StepRecord | None:
        return self.records.get(run_id)

    def model_version(self, name: str, version: str) -> Mapping[str, Any] | None:
        return self.versions.get((name, str(version)))

    def alias_version(self, name: str, alias: str) -> str | None:
        return self.aliases.get((name, alias))

    def producers(self, fingerprint: str) -> list[str]:
        found = [r for r in self.records.values() if fingerprint in _output_fingerprints(r)]
        found.sort(key=lambda r: r.recorded_at or "", reverse=True)
        return [r.mlflow_run_id for r in found]


@dataclass
class LineageGraph:
    """Nodes (datasets, models, step runs) and edges in the direction data flows."""

    requested: str
    target: str | None = None
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, Any]] = field(default_factory=list)
    #: Things that make the graph incomplete (a record missing, a fingerprint that does not match).
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.problems

    def add_edge(self, source: str, target: str, role: str | None) -> None:
        edge = {"from": source, "to": target, "role": role}
        if edge not in self.edges:
            self.edges.append(edge)

    def upstream(self, node_id: str) -> list[tuple[str | None, str]]:
        """(role, node id) of what flows into ``node_id``."""
        return [(e["role"], e["from"]) for e in self.edges if e["to"] == node_id]

    def sources(self) -> list[str]:
        """Datasets with no recorded producer: where the lineage starts (the raw data)."""
        produced = {e["to"] for e in self.edges}
        return [n for n, node in self.nodes.items() if node["kind"] == "dataset" and n not in produced]

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "target": self.target,
            "complete": self.complete,
            "problems": list(self.problems),
            "sources": self.sources(),
            "nodes": list(self.nodes.values()),
            "edges": list(self.edges),
        }


def dataset_id(uri: str | None, fingerprint: str | None) -> str:
    return f"dataset:{uri or '?'}@{fingerprint or '?'}"


def model_id(name: str, version: str) -> str:
    return ModelRef(name, str(version)).uri


def step_id(run_id: str) -> str:
    return f"run:{run_id}"


def build_graph(target: Target, source: RecordSource) -> LineageGraph:
    """Walk upstream from ``target``; raises :class:`LineageError` when the target itself is not found.

    A file target must carry its content fingerprint (computed by the caller).
    """
    walker = _Walker(source, LineageGraph(requested=target.text))
    if target.kind == "version":
        assert target.name and target.version
        walker.graph.target = walker.model(target.name, target.version, must_exist=True)
    elif target.kind == "alias":
        assert target.name and target.alias
        version = source.alias_version(target.name, target.alias)
        if version is None:
            raise LineageError(f"alias {target.alias!r} of registered model {target.name!r} is not set")
        walker.graph.target = walker.model(target.name, version, must_exist=True)
    elif target.kind == "file":
        if not target.fingerprint:
            raise LineageError(f"{target.text}: a file target needs its content fingerprint")
        if not source.producers(target.fingerprint):
            raise LineageError(
                f"no step run recorded in MLflow wrote {target.text} ({target.fingerprint}): "
                "it is not an output of BatchPredictOperator or FeaturizeOperator in this tracking store"
            )
        walker.graph.target = walker.dataset({"uri": target.path, "fingerprint": target.fingerprint})
    else:
        raise LineageError(f"unknown target kind {target.kind!r}")
    return walker.graph


def add_downstream(graph: LineageGraph, source: RecordSource, records: Iterable[StepRecord]) -> None:
    """Add steps that used the graph's model, such as batch predictions, with what they read and wrote,
    so that the graph reads raw data -> features -> model -> predictions. Their inputs are walked
    upstream like any step's; their outputs become dataset nodes without another lookup."""
    walker = _Walker(source, graph)
    for record in records:
        node_id = walker.step(record)
        for entry in record.outputs:
            out_id = dataset_id(entry.get("uri"), entry.get("fingerprint"))
            if out_id not in graph.nodes:
                graph.nodes[out_id] = {"id": out_id, "kind": "dataset", **_entry(entry)}
            graph.add_edge(node_id, out_id, entry.get("role"))


class _Walker:
    def __init__(self, source: RecordSource, graph: LineageGraph) -> None:
        self.source = source
        self.graph = graph
        self._records: dict[str, StepRecord | None] = {}

    def read(self, run_id: str) -> StepRecord | None:
        """The record of ``run_id``; one that does not parse is a problem of the graph and counts as absent."""
        if run_id not in self._records:
            try:
                self._records[run_id] = self.source.record(run_id)
            except RecordError as e:
                self.graph.problems.append(str(e))
                self._records[run_id] = None
        return self._records[run_id]

    # --- datasets ------------------------------------------------------------------------------
    def dataset(self, entry: Mapping[str, Any], hint: str | None = None) -> str:
        uri, fingerprint = entry.get("uri"), entry.get("fingerprint")
        node_id = dataset_id(uri, fingerprint)
        if node_id in self.graph.nodes:
            return node_id
        node: dict[str, Any] = {"id": node_id, "kind": "dataset", "uri": uri, "fingerprint": fingerprint}
        node.update({k: entry[k] for k in ("role", "rows", "size_bytes") if entry.get(k) is not None})
        self.graph.nodes[node_id] = node
        if not fingerprint:
            self.graph.problems.append(f"dataset {uri} has no recorded fingerprint")
            return node_id
        producer, others = self._producer(fingerprint, hint, uri)
        if producer is None:
            return node_id
        output = next(o for o in producer.outputs if o.get("fingerprint") == fingerprint)
        if output.get("role"):
            node["role"] = output["role"]  # what the data is, as its producer named it
        for key in ("rows", "size_bytes"):
            if node.get(key) is None and output.get(key) is not None:
                node[key] = output[key]
        if uri and output.get("uri") and output["uri"] != uri and _as_path(output["uri"]) != _as_path(uri):
            node["recorded_uri"] = output["uri"]
        if others:
            node["other_producer_runs"] = others
        self.graph.add_edge(self.step(producer), node_id, output.get("role"))
        return node_id

    def _producer(
        self, fingerprint: str, hint: str | None, uri: str | None
    ) -> tuple[StepRecord | None, list[str]]:
        """The record of the run that wrote ``fingerprint`` and the other runs that may have, too."""
        found = [r for r in self.source.producers(fingerprint) if r != hint]
        candidates = ([hint] if hint else []) + found
        for run_id in candidates:
            record = self.read(run_id)
            if record is not None and fingerprint in _output_fingerprints(record):
                return record, [r for r in candidates if r != run_id]
            if run_id == hint:
                why = "has no readable step record" if record is None else "does not list it among its outputs"
                self.graph.problems.append(
                    f"MLflow run {hint} is named as the producer of {uri} ({fingerprint}) but {why}"
                )
        return None, []

    # --- models ----------------------------------------------------------------------------------
    def model(self, name: str, version: str, must_exist: bool = False) -> str:
        node_id = model_id(name, version)
        if node_id in self.graph.nodes:
            return node_id
        found = self.source.model_version(name, str(version))
        node: dict[str, Any] = {"id": node_id, "kind": "model", "name": name, "version": str(version)}
        if found is None:
            if must_exist:
                raise LineageError(f"model version {node_id} is not in the registry")
            node["error"] = "not in the registry"
            self.graph.nodes[node_id] = node
            self.graph.problems.append(f"model version {node_id} is not in the registry")
            return node_id
        tags = dict(found.get("tags") or {})
        node.update(
            {
                "uri": node_id,
                "fingerprint": tags.get(TAG_MODEL_FINGERPRINT),
                "aliases": sorted(found.get("aliases") or []),
                "airflow": {k: tags[f"airflow.{k}"] for k in ("dag_id", "run_id", "task_id") if f"airflow.{k}" in tags},
                "training_run_id": tags.get(TAG_TRAINING_RUN) or found.get("run_id"),
            }
        )
        self.graph.nodes[node_id] = node
        training_run = node["training_run_id"]
        if not training_run:
            self.graph.problems.append(f"model version {node_id} names no training run")
            return node_id
        record = self.read(training_run)
        if record is None:
            self.graph.problems.append(f"training run {training_run} of {node_id} has no readable step record")
            return node_id
        trained = record.model
        if trained is None or (trained.name, trained.version) != (name, str(version)):
            self.graph.problems.append(
                f"training run {training_run} recorded model {trained.uri if trained else None}, not {node_id}"
            )
        elif node["fingerprint"] and trained.fingerprint != node["fingerprint"]:
            self.graph.problems.append(
                f"{node_id} artifact fingerprint {node['fingerprint']} differs from the one recorded at "
                f"training ({trained.fingerprint})"
            )
        featurize_run = tags.get(evidence_tag("featurize"))
        self.graph.add_edge(self.step(record, {"features": featurize_run} if featurize_run else {}), node_id, "model")
        return node_id

    # --- step runs -------------------------------------------------------------------------------
    def step(self, record: StepRecord, hints: Mapping[str, str] | None = None) -> str:
        node_id = step_id(record.mlflow_run_id)
        if node_id in self.graph.nodes:
            return node_id
        self.graph.nodes[node_id] = step_node(record)
        for entry in record.inputs:
            hint = entry.get("producer_run_id") or (hints or {}).get(str(entry.get("role")))
            self.graph.add_edge(self.dataset(entry, hint), node_id, entry.get("role"))
        model = record.model
        if model is not None and record.step not in MODEL_PRODUCING_STEPS:
            model_node = self.model(model.name, model.version)
            recorded = model.fingerprint
            current = self.graph.nodes[model_node].get("fingerprint")
            if recorded and current and recorded != current:
                self.graph.problems.append(
                    f"step run {record.mlflow_run_id} used {model_node} with fingerprint {recorded}, "
                    f"but the registry now records {current}"
                )
            self.graph.add_edge(model_node, node_id, "model")
        return node_id


def step_node(record: StepRecord) -> dict[str, Any]:
    """A step run as a lineage node: what ran, where, with what code, parameters, inputs and outputs."""
    node: dict[str, Any] = {
        "id": step_id(record.mlflow_run_id),
        "kind": "step",
        "step": record.step,
        "status": record.status,
        "mlflow_run_id": record.mlflow_run_id,
        "airflow": record.airflow.to_dict(),
        "code": record.code,
        "params": dict(record.params),
        "inputs": [_entry(e) for e in record.inputs],
        "outputs": [_entry(e) for e in record.outputs],
    }
    for key, value in record.to_dict().items():
        if key not in node and key not in _RECORD_FIELDS_LEFT_OUT and value is not None:
            node[key] = value
    return node


def _entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in _ENTRY_FIELDS if entry.get(k) is not None}


def _output_fingerprints(record: StepRecord) -> set[str]:
    return {o["fingerprint"] for o in record.outputs if o.get("fingerprint")}


def _as_path(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


# --- rendering -----------------------------------------------------------------------------------
def render_json(graph: LineageGraph) -> str:
    return json.dumps(graph.to_dict(), indent=2, sort_keys=False, default=str)


def _title(node: Mapping[str, Any], role: str | None) -> str:
    if node["kind"] == "dataset":
        return f"{role or node.get('role') or 'dataset'}: {node.get('uri')}"
    if node["kind"] == "model":
        return f"model: {node['id']}"
    return f"step {node.get('step')} [{node.get('status')}]"


def _details(node: Mapping[str, Any], has_upstream: bool) -> list[str]:
    if node["kind"] == "dataset":
        lines = [f"fingerprint {node.get('fingerprint')}"]
        if node.get("rows") is not None:
            lines[0] += f", {node['rows']} rows"
        if node.get("other_producer_runs"):
            lines.append(f"same content also written by runs {', '.join(node['other_producer_runs'])}")
        if not has_upstream:
            lines.append("source data (no recorded producer)")
        return lines
    if node["kind"] == "model":
        lines = [f"fingerprint {node.get('fingerprint')}"]
        if node.get("aliases"):
            lines.append(f"aliases: {', '.join(node['aliases'])}")
        if node.get("error"):
            lines.append(f"error: {node['error']}")
        return lines
    airflow = node.get("airflow") or {}
    lines = [
        "airflow: "
        + " ".join(f"{k}={airflow[k]}" for k in ("dag_id", "run_id", "task_id", "try_number") if k in airflow),
        f"mlflow run: {node.get('mlflow_run_id')}",
        f"code: {node.get('code') or '-'}",
    ]
    params = node.get("params") or {}
    if params:
        lines.append("params:")
        lines.extend(f"  {k} = {short_text(v, 100)}" for k, v in params.items())
    if node.get("error"):
        lines.append(f"error: {short_text(node['error'], 200)}")
    return lines


def render_text(graph: LineageGraph) -> str:
    """A tree from the target upstream; a node reached twice is printed once, then referred to."""
    lines: list[str] = [f"lineage of {graph.requested}"]
    shown: set[str] = set()

    def walk(node_id: str, role: str | None, head: str, indent: str) -> None:
        node = graph.nodes[node_id]
        if node_id in shown:
            lines.append(f"{head}{_title(node, role)}  (shown above)")
            return
        shown.add(node_id)
        lines.append(f"{head}{_title(node, role)}")
        upstream = graph.upstream(node_id)
        bar = "│   " if upstream else "    "
        lines.extend(f"{indent}{bar}{d}" for d in _details(node, bool(upstream)))
        for i, (child_role, child) in enumerate(upstream):
            last = i == len(upstream) - 1
            walk(child, child_role, indent + ("└── " if last else "├── "), indent + ("    " if last else "│   "))

    if graph.target is not None:
        walk(graph.target, None, "", "")
    if graph.problems:
        lines.append("")
        lines.append("INCOMPLETE:")
        lines.extend(f"  - {p}" for p in graph.problems)
    return "\n".join(lines)


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(graph: LineageGraph) -> str:
    """Graphviz DOT: datasets as notes, models as 3-D boxes, steps as rounded boxes; edges follow the data."""
    shapes = {"dataset": "note", "model": "box3d", "step": "box"}
    out = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for node_id, node in graph.nodes.items():
        if node["kind"] == "dataset":
            label = f"{node.get('uri')}\n{node.get('fingerprint')}"
        elif node["kind"] == "model":
            label = f"{node_id}\n{node.get('fingerprint')}"
        else:
            airflow = node.get("airflow") or {}
            label = (
                f"{node.get('step')} [{node.get('status')}]\n"
                f"{airflow.get('dag_id')}.{airflow.get('task_id')} {airflow.get('run_id')}\n"
                f"mlflow {node.get('mlflow_run_id')}\ncode {node.get('code') or '-'}"
            )
        style = ', style="rounded,bold"' if node_id == graph.target else ', style="rounded"'
        out.append(f"  {_dot_quote(node_id)} [shape={shapes[node['kind']]}{style}, label={_dot_quote(label)}];")
    for edge in graph.edges:
        label = f" [label={_dot_quote(edge['role'])}]" if edge.get("role") else ""
        out.append(f"  {_dot_quote(edge['from'])} -> {_dot_quote(edge['to'])}{label};")
    out.append("}")
    return "\n".join(out)
