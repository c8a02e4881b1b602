"""Compile a UI workflow (litegraph JSON, version 0.4 or 1) into an API prompt, on the server.

Reproduces the web frontend's ``graphToPrompt`` (comfy-compat §4.4-§4.5) so that scripts can
post the workflow file they saved instead of exporting the API form:

* ``widgets_values`` are mapped onto input names in widget creation order: the node's
  ``input_order`` (required, then optional) from ``/object_info``, with the hidden
  ``control_after_generate`` entry after seed-like inputs and the upload button entry after
  upload combos; a dict of values keyed by widget name is accepted too; missing values take the
  widget's default, as the frontend does when it loads a short list;
* a linked input (including a widget converted to an input) takes the link;
* muted nodes (mode 2) vanish and inputs that link to them are removed;
* bypassed nodes (mode 4) vanish and their consumers are rewired to the matching upstream input;
* ``PrimitiveNode`` values are baked into their targets, ``Reroute`` nodes and native reroutes
  (``extra.reroutes``/``linkExtensions``, data on the links only) are passed through, notes,
  groups and unknown keys are ignored;
* array values are wrapped as ``{"__value__": [...]}`` so they cannot be mistaken for links;
* subgraph instances (``definitions.subgraphs``) expand into their inner nodes with colon-path
  ids (``"12:5"``); an unconnected subgraph input leaves the inner node's own widget value.

Legacy group nodes (``extra.groupNodes``) are not expanded: their nodes fail as unknown types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "WorkflowError",
    "WidgetEntry",
    "compile_workflow",
    "is_api_prompt",
    "is_ui_workflow",
    "types_compatible",
    "widget_entries",
    "widget_inputs",
]

MODE_NEVER = 2  # "muted" in the editor
MODE_BYPASS = 4
VIRTUAL_NODE_TYPES = frozenset({"PrimitiveNode", "Reroute", "Note", "MarkdownNote"})
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
SEED_INPUT_NAMES = frozenset({"seed", "noise_seed"})
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize", "increment-wrap"})
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload")
UPLOAD_VALUES = frozenset({"image", "video", "audio", "", None})


class WorkflowError(ValueError):
    """A UI workflow cannot be compiled; the message names the node."""


# -- format detection ------------------------------------------------------------------------


def is_ui_workflow(obj: Any) -> bool:
    """A litegraph workflow: a ``nodes`` list plus one of its top-level markers."""
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("nodes"), list)
        and any(key in obj for key in ("links", "version", "last_node_id", "state"))
    )


def is_api_prompt(obj: Any) -> bool:
    """An API prompt: a non-empty ``{node_id: {"class_type", "inputs"}}`` mapping."""
    return (
        isinstance(obj, dict)
        and bool(obj)
        and not is_ui_workflow(obj)
        and all(isinstance(node, dict) and "class_type" in node for node in obj.values())
    )


# -- widgets_values -> inputs ----------------------------------------------------------------


@dataclass(frozen=True)
class WidgetEntry:
    """One entry of ``widgets_values``: an input's widget, or a hidden control/upload widget."""

    name: str
    role: str  # "input" | "control" | "upload"
    default: Any = None


def _options(spec: Any) -> dict:
    return spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict) else {}


def _default(spec: Any) -> Any:
    """The value a freshly created widget holds: ``default``, else a combo's first option."""
    options = _options(spec)
    if "default" in options:
        return options["default"]
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else None
    choices = kind if isinstance(kind, list) else options.get("options") if kind == "COMBO" else None
    return choices[0] if choices else None


def widget_entries(node_info: Mapping[str, Any], extra_widget_inputs: frozenset[str] = frozenset()) -> list[WidgetEntry]:
    """The widgets the frontend creates for a node type, in ``widgets_values`` order (§4.4).

    ``extra_widget_inputs`` names inputs that the saved node marks as widgets (slots with a
    ``widget`` key), which covers custom widget types registered by extensions.
    """
    declared = node_info.get("input") or {}
    order = node_info.get("input_order") or {section: list(declared.get(section) or {}) for section in ("required", "optional")}
    entries: list[WidgetEntry] = []
    for section in ("required", "optional"):
        section_specs = declared.get(section) or {}
        for name in order.get(section) or []:
            spec = section_specs.get(name)
            if not isinstance(spec, (list, tuple)) or not spec:
                continue
            kind, options = spec[0], _options(spec)
            is_combo = isinstance(kind, list) or kind == "COMBO"
            is_widget = is_combo or (isinstance(kind, str) and kind in WIDGET_TYPES) or name in extra_widget_inputs
            if options.get("forceInput") or not is_widget:
                continue
            entries.append(WidgetEntry(name, "input", _default(spec)))
            seed_like = kind == "INT" and name in SEED_INPUT_NAMES
            if (kind == "INT" or is_combo) and (options.get("control_after_generate") or seed_like):
                entries.append(WidgetEntry("control_after_generate", "control"))
            if is_combo and any(options.get(flag) for flag in UPLOAD_OPTIONS):
                entries.append(WidgetEntry("upload", "upload"))
    return entries


def widget_inputs(node: Mapping[str, Any], node_info: Mapping[str, Any]) -> dict[str, Any]:
    """The serialisable widget values of one saved node, keyed by input name.

    Hidden entries are skipped only when the saved value looks like one (a control mode, an
    upload kind), so files from frontends that did not write them still line up.
    """
    slot_widgets = frozenset(
        (slot.get("widget") or {}).get("name", slot.get("name"))
        for slot in node.get("inputs") or []
        if isinstance(slot, dict) and slot.get("widget")
    )
    entries = widget_entries(node_info, slot_widgets)
    saved = node.get("widgets_values")
    values: dict[str, Any] = {}
    if isinstance(saved, dict):
        for entry in entries:
            if entry.role == "input" and (entry.name in saved or entry.default is not None):
                values[entry.name] = saved.get(entry.name, entry.default)
        return values
    saved = list(saved or [])
    position = 0
    for entry in entries:
        present = position < len(saved)
        if entry.role == "input":
            if present:
                values[entry.name] = saved[position]
                position += 1
            elif entry.default is not None:
                values[entry.name] = entry.default
        elif present and _is_hidden_value(entry, saved[position]):
            position += 1
    return values


def _is_hidden_value(entry: WidgetEntry, value: Any) -> bool:
    """Whether a saved value is the hidden control/upload entry the layout expects here."""
    if not (value is None or isinstance(value, (str, int, float, bool))):
        return False
    return value in (CONTROL_VALUES if entry.role == "control" else UPLOAD_VALUES)


def _wrap(value: Any) -> Any:
    return {"__value__": value} if isinstance(value, list) else value


# -- the graph -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Link:
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int
    type: Any


@dataclass(frozen=True)
class _Value:
    """A literal that replaces a link (a PrimitiveNode's value)."""

    value: Any


_DROP = object()  # the input is removed (bypass without a match, or an empty bypass slot)


def _slot_index(value: Any, link_id: Any) -> int:
    """Slot indices may arrive as numeric strings (§4.1)."""
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        raise WorkflowError(f"link {link_id} has a malformed slot index {value!r}") from None


def _parse_links(raw_links: Any) -> dict[str, _Link]:
    links: dict[str, _Link] = {}
    for raw in raw_links or []:
        if isinstance(raw, dict):
            link_id, origin_id, origin_slot = raw.get("id"), raw.get("origin_id"), raw.get("origin_slot")
            target_id, target_slot, link_type = raw.get("target_id"), raw.get("target_slot"), raw.get("type")
        elif isinstance(raw, (list, tuple)) and len(raw) >= 5:
            link_id, origin_id, origin_slot, target_id, target_slot = raw[:5]
            link_type = raw[5] if len(raw) > 5 else None
        else:
            continue
        links[str(link_id)] = _Link(
            str(origin_id), _slot_index(origin_slot, link_id), str(target_id), _slot_index(target_slot, link_id), link_type
        )
    return links


def _type_names(slot_type: Any) -> list[str]:
    if isinstance(slot_type, (list, tuple)):
        slot_type = ",".join(str(part) for part in slot_type)
    if slot_type in (None, "", "*", 0):
        return ["*"]
    return [part.strip().lower() for part in str(slot_type).split(",")]


def types_compatible(first: Any, second: Any) -> bool:
    """litegraph's connection rule: ``*``/empty matches anything, else any comma-listed type matches."""
    first_names, second_names = _type_names(first), _type_names(second)
    if "*" in first_names or "*" in second_names:
        return True
    return bool(set(first_names) & set(second_names))


def _is_wildcard(slot_type: Any) -> bool:
    return _type_names(slot_type) == ["*"]


class _Scope:
    """One graph level: the workflow itself, or one subgraph instance expanded in place.

    Inner nodes of an instance get prompt ids ``"<instance path>:<inner id>"`` (``"12:5"``,
    ``"1:2:3"``), as the frontend's ExecutableNodeDTO paths. Links from the subgraph's input
    node (id -10) continue at the instance's input slot in the parent; links into a subgraph
    instance continue at the inner link that feeds the output node (id -20).
    """

    def __init__(
        self,
        graph: Mapping[str, Any],
        definitions: Mapping[str, Mapping[str, Any]],
        prefix: str = "",
        parent: _Scope | None = None,
        instance: Mapping[str, Any] | None = None,
    ) -> None:
        self.nodes: dict[str, Mapping[str, Any]] = {}
        for node in graph.get("nodes") or []:
            if isinstance(node, dict) and "id" in node:
                self.nodes[str(node["id"])] = node
        self.links = _parse_links(graph.get("links"))
        self.definitions = definitions
        self.prefix = prefix
        self.parent = parent
        self.instance = instance
        self._children: dict[str, _Scope] = {}

    def is_instance(self, node: Mapping[str, Any]) -> bool:
        return isinstance(node.get("type"), str) and node["type"] in self.definitions

    def child(self, node_id: str) -> _Scope:
        if node_id not in self._children:
            instance = self.nodes[node_id]
            if self.prefix.count(":") >= _MAX_SUBGRAPH_DEPTH:
                raise WorkflowError(f"node {self.prefix}{node_id}: subgraphs nested too deeply (recursive definition?)")
            definition = self.definitions[instance["type"]]
            self._children[node_id] = _Scope(definition, self.definitions, f"{self.prefix}{node_id}:", self, instance)
        return self._children[node_id]

    def output_link(self, slot: int) -> _Link | None:
        """The inner link that feeds output ``slot`` of this subgraph."""
        for link in self.links.values():
            if link.target_id == SUBGRAPH_OUTPUT_ID and link.target_slot == slot:
                return link
        return None


SUBGRAPH_INPUT_ID = "-10"
SUBGRAPH_OUTPUT_ID = "-20"
_MAX_SUBGRAPH_DEPTH = 32


def _collect_definitions(graph: Mapping[str, Any], found: dict[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Every subgraph definition by id, including definitions nested inside definitions."""
    definitions = graph.get("definitions") or {}
    for definition in (definitions.get("subgraphs") if isinstance(definitions, dict) else None) or []:
        if isinstance(definition, dict) and isinstance(definition.get("id"), str):
            found[definition["id"]] = definition
            _collect_definitions(definition, found)
    return found


def _resolve(scope: _Scope, link_id: Any, wanted_type: Any) -> _Link | _Value | object | None:
    """Follow a link upstream to a real node's output, a primitive value, _DROP, or None.

    Passes through Reroute nodes, bypassed nodes and subgraph boundaries. None means
    "unresolvable here" (dangling link, empty reroute, primitive without value, unconnected
    subgraph input): the consumer keeps its own widget value, as in the frontend.
    """
    visited: set[tuple[str, str, int]] = set()
    link = scope.links.get(str(link_id)) if link_id is not None else None
    while link is not None:
        step = (scope.prefix, link.origin_id, link.origin_slot)
        if step in visited:
            return None
        visited.add(step)
        if link.origin_id == SUBGRAPH_INPUT_ID:
            if scope.parent is None or scope.instance is None:
                return None
            slots = scope.instance.get("inputs") or []
            outer_link = slots[link.origin_slot].get("link") if link.origin_slot < len(slots) else None
            scope, link = scope.parent, scope.parent.links.get(str(outer_link)) if outer_link is not None else None
            continue
        origin = scope.nodes.get(link.origin_id)
        if origin is None:
            return None
        node_type = origin.get("type")
        if node_type == "PrimitiveNode":
            return _primitive_value(origin)
        if node_type == "Reroute":
            inputs = origin.get("inputs") or []
            link = scope.links.get(str(inputs[0].get("link"))) if inputs else None
            continue
        if node_type in VIRTUAL_NODE_TYPES:
            return None
        if origin.get("mode") == MODE_BYPASS:
            slot = _bypass_input(origin, link.origin_slot, wanted_type)
            link = scope.links.get(str(slot.get("link"))) if slot is not None else None
            if link is None:
                return _DROP
            continue
        if scope.is_instance(origin) and origin.get("mode") != MODE_NEVER:
            scope = scope.child(link.origin_id)
            link = scope.output_link(link.origin_slot)
            continue
        return _Link(scope.prefix + link.origin_id, link.origin_slot, scope.prefix + link.target_id, link.target_slot, link.type)
    return None


def _primitive_value(node: Mapping[str, Any]) -> _Value | None:
    saved = node.get("widgets_values")
    if isinstance(saved, list) and saved:
        return _Value(saved[0])
    if isinstance(saved, dict) and saved:
        return _Value(next(iter(saved.values())))
    return None


def _bypass_input(node: Mapping[str, Any], output_slot: int, wanted_type: Any) -> Mapping[str, Any] | None:
    """The input a bypassed node passes through for one output (frontend rule, §4.5)."""
    inputs = [slot for slot in node.get("inputs") or [] if isinstance(slot, dict)]
    if not inputs:
        return None
    if _is_wildcard(wanted_type):
        return inputs[output_slot] if output_slot < len(inputs) else inputs[0]
    if output_slot < len(inputs) and types_compatible(inputs[output_slot].get("type"), wanted_type):
        return inputs[output_slot]
    wanted = _type_names(wanted_type)
    for slot in inputs:
        if _type_names(slot.get("type")) == wanted:
            return slot
    for slot in inputs:
        if types_compatible(slot.get("type"), wanted_type):
            return slot
    return None


# -- compilation -----------------------------------------------------------------------------


def _node_order(node: Mapping[str, Any]) -> tuple[int, str]:
    order = node.get("order")
    return (order if isinstance(order, int) else 0, str(node.get("id")))


def compile_workflow(workflow: Mapping[str, Any], object_info: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """Turn a UI workflow (version 0.4 or 1) into an API prompt ``{id: {inputs, class_type, _meta}}``.

    Raises :class:`WorkflowError` for a malformed workflow or a node type missing from
    ``object_info`` (the message names the node id and type).
    """
    if not is_ui_workflow(workflow):
        raise WorkflowError("not a UI workflow: expected a 'nodes' list and 'links' or 'version'")
    _check_shapes(workflow, "workflow")
    prompt: dict[str, dict] = {}
    _compile_scope(_Scope(workflow, _collect_definitions(workflow, {})), object_info, prompt)
    _drop_links_to_missing_nodes(prompt)
    return prompt


def _check_shapes(graph: Mapping[str, Any], where: str) -> None:
    """Refuse a malformed graph up front, naming the part, instead of failing deep inside.

    The schema is permissive (§4: unknown keys pass through), so only the shapes the compiler
    reads are checked: node records, their slot lists, widget values and the link list.
    """
    if not isinstance(graph.get("nodes"), list):
        raise WorkflowError(f"{where}: 'nodes' must be a list")
    links = graph.get("links")
    if links is not None and not isinstance(links, list):
        raise WorkflowError(f"{where}: 'links' must be a list")
    for index, node in enumerate(graph["nodes"]):
        if not isinstance(node, dict):
            raise WorkflowError(f"{where}: node #{index} is not an object")
        label = f"{where}: node {node.get('id')!r}"
        if not isinstance(node.get("id"), (int, str)) or isinstance(node.get("id"), bool):
            raise WorkflowError(f"{where}: node #{index} has no valid 'id'")
        for key in ("inputs", "outputs"):
            slots = node.get(key)
            if slots is None:
                continue
            if not isinstance(slots, list) or not all(isinstance(slot, dict) for slot in slots):
                raise WorkflowError(f"{label}: '{key}' must be a list of slot objects")
            for slot in slots:
                if slot.get("widget") is not None and not isinstance(slot["widget"], dict):
                    raise WorkflowError(f"{label}: slot {slot.get('name')!r} has a malformed 'widget'")
        widgets = node.get("widgets_values")
        if widgets is not None and not isinstance(widgets, (list, dict)):
            raise WorkflowError(f"{label}: 'widgets_values' must be a list or an object")
        if node.get("type") is not None and not isinstance(node["type"], str):
            raise WorkflowError(f"{label}: 'type' must be a string")
    definitions = graph.get("definitions")
    if isinstance(definitions, dict):
        for subgraph in definitions.get("subgraphs") or []:
            if not isinstance(subgraph, dict):
                raise WorkflowError(f"{where}: a subgraph definition is not an object")
            _check_shapes(subgraph, f"subgraph {subgraph.get('id')!r}")


def _compile_scope(scope: _Scope, object_info: Mapping[str, Mapping[str, Any]], prompt: dict[str, dict]) -> None:
    for node_id, node in sorted(scope.nodes.items(), key=lambda pair: _node_order(pair[1])):
        node_type = node.get("type")
        if node_type in VIRTUAL_NODE_TYPES or node.get("mode") in (MODE_NEVER, MODE_BYPASS):
            continue
        if scope.is_instance(node):
            _compile_scope(scope.child(node_id), object_info, prompt)
            continue
        prompt_id = scope.prefix + node_id
        node_info = object_info.get(node_type) if isinstance(node_type, str) else None
        if node_info is None:
            raise WorkflowError(f"node {prompt_id} has unknown type {node_type!r}")
        inputs = {name: _wrap(value) for name, value in widget_inputs(node, node_info).items()}
        for slot in node.get("inputs") or []:
            if not isinstance(slot, dict) or slot.get("link") is None:
                continue
            name = (slot.get("widget") or {}).get("name") or slot.get("name")
            resolved = _resolve(scope, slot.get("link"), slot.get("type"))
            if resolved is _DROP:
                inputs.pop(name, None)
            elif isinstance(resolved, _Value):
                inputs[name] = _wrap(resolved.value)
            elif isinstance(resolved, _Link):
                inputs[name] = [resolved.origin_id, resolved.origin_slot]
        title = node.get("title") or node_info.get("display_name") or node_type
        prompt[prompt_id] = {"inputs": inputs, "class_type": node_type, "_meta": {"title": title}}


def _drop_links_to_missing_nodes(prompt: dict[str, dict]) -> None:
    """Step 4 of graphToPrompt: inputs linking to muted or absent nodes are deleted."""
    for node in prompt.values():
        inputs = node["inputs"]
        for name in [name for name, value in inputs.items() if _is_link(value) and value[0] not in prompt]:
            del inputs[name]


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)
