/**
 * A subgraph definition (comfy-compat §4.3) as an editable graph, and back.
 *
 * A definition is a version 1 graph plus `inputs`/`outputs` (SubgraphIO entries), and
 * `inputNode` (id -10) / `outputNode` (id -20) whose links carry values across the boundary.
 * While a definition is open, those two are shown as ordinary node records: the input node
 * has one output slot per subgraph input, the output node one input slot per subgraph
 * output. So the editor's usual commands (connect, disconnect, move) wire them, and writing
 * the definition turns the two records back into `inputNode`/`outputNode` and `linkIds`.
 */
import { readWorkflow, toRecord, writeWorkflowV1 } from "./workflow.js";

export const SUBGRAPH_INPUT_ID = -10;
export const SUBGRAPH_OUTPUT_ID = -20;
export const SUBGRAPH_INPUT_TYPE = "SubgraphInputNode";
export const SUBGRAPH_OUTPUT_TYPE = "SubgraphOutputNode";
const DEFAULT_BOUNDING = [-300, 0, 160, 80];
/** IO nodes are drawn at least this size, as other nodes (layout.js MIN_W), whatever their saved bounding. */
const IO_MIN_SIZE = [240, 40];

/** Whether `node` is the input or output node of an open subgraph. */
export function isSubgraphIoNode(node) {
  return node?.type === SUBGRAPH_INPUT_TYPE || node?.type === SUBGRAPH_OUTPUT_TYPE;
}

/** Link ids into (or out of) one IO slot: the saved `linkIds` order first, then any other. */
function slotLinks(links, saved, matches) {
  const found = links.filter(matches).map((link) => link.id);
  const ordered = (saved ?? []).filter((id) => found.includes(id));
  return [...ordered, ...found.filter((id) => !ordered.includes(id))];
}

function ioNodeRecord(id, type, title, bounding, slots) {
  const [x, y, w, h] = Array.isArray(bounding) ? bounding : DEFAULT_BOUNDING;
  return toRecord("node", id, {
    id, type, title, pos: [x, y], size: [Math.max(w, IO_MIN_SIZE[0]), Math.max(h, IO_MIN_SIZE[1])], flags: {}, mode: 0, properties: {}, ...slots,
  }, id === SUBGRAPH_INPUT_ID ? -2 : -1);
}

/**
 * Store records of a definition opened for editing: its own graph plus the IO node records.
 * @param {object} definition a subgraph definition without nested `definitions`
 */
export function readSubgraph(definition) {
  const records = readWorkflow({ ...definition, version: 1 });
  const document = records[0];
  document.wroteVersion = definition.version !== undefined;
  delete document.meta.version;
  const links = records.filter((record) => record.typeName === "link");
  const inputs = definition.inputs ?? [];
  const outputs = definition.outputs ?? [];
  const inputNode = ioNodeRecord(SUBGRAPH_INPUT_ID, SUBGRAPH_INPUT_TYPE, "Inputs", definition.inputNode?.bounding, {
    inputs: [],
    outputs: inputs.map((io, slot) => ({
      name: io.label ?? io.name, type: io.type,
      links: slotLinks(links.map((link) => ({ ...link, id: link.jsonId })), io.linkIds, (link) => Number(link.origin_id) === SUBGRAPH_INPUT_ID && link.origin_slot === slot),
    })),
  });
  const outputNode = ioNodeRecord(SUBGRAPH_OUTPUT_ID, SUBGRAPH_OUTPUT_TYPE, "Outputs", definition.outputNode?.bounding, {
    inputs: outputs.map((io, slot) => ({
      name: io.label ?? io.name, type: io.type,
      link: links.find((link) => Number(link.target_id) === SUBGRAPH_OUTPUT_ID && link.target_slot === slot)?.jsonId ?? null,
    })),
    outputs: [],
  });
  return [...records, inputNode, outputNode];
}

const moved = (bounding, node) => !Array.isArray(bounding) || bounding[0] !== node.pos[0] || bounding[1] !== node.pos[1];
/** The saved bounding of a moved IO node: its new place, its saved size. */
const boundingAt = (bounding, node) => [...node.pos, ...(Array.isArray(bounding) ? bounding.slice(2, 4) : DEFAULT_BOUNDING.slice(2))];

/**
 * The definition JSON of an edited subgraph graph (the writer's parts, IO records included).
 * Counters, unknown keys and the IO entries' own keys are kept.
 */
export function writeSubgraph(parts) {
  const inputNode = parts.nodes.find((node) => node.type === SUBGRAPH_INPUT_TYPE);
  const outputNode = parts.nodes.find((node) => node.type === SUBGRAPH_OUTPUT_TYPE);
  const definition = writeWorkflowV1({ ...parts, nodes: parts.nodes.filter((node) => !isSubgraphIoNode(node)) });
  if (!parts.document.wroteVersion) delete definition.version;
  const meta = parts.document.meta;
  if (inputNode) {
    if (moved(meta.inputNode?.bounding, inputNode)) definition.inputNode = { id: SUBGRAPH_INPUT_ID, ...meta.inputNode, bounding: boundingAt(meta.inputNode?.bounding, inputNode) };
    definition.inputs = (meta.inputs ?? []).map((io, slot) => withLinkIds(io, inputNode.outputs[slot]?.links ?? []));
  }
  if (outputNode) {
    if (moved(meta.outputNode?.bounding, outputNode)) definition.outputNode = { id: SUBGRAPH_OUTPUT_ID, ...meta.outputNode, bounding: boundingAt(meta.outputNode?.bounding, outputNode) };
    definition.outputs = (meta.outputs ?? []).map((io, slot) => {
      const link = outputNode.inputs[slot]?.link;
      return withLinkIds(io, link == null ? [] : [link]);
    });
  }
  return definition;
}

function withLinkIds(io, linkIds) {
  if (!("linkIds" in io) && !linkIds.length) return io;
  return { ...io, linkIds: [...linkIds] };
}
