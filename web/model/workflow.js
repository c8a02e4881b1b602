/**
 * UI workflow JSON (comfy-compat §4.1–§4.3) to store records and back.
 *
 * Reads version 0.4 (links as tuples) and version 1 (links as objects, `state` counters,
 * top-level `reroutes`); writes version 0.4, what ComfyUI's Save and PNG embedding write.
 * Every key the editor does not manage is kept on its record, so unknown keys survive a round trip.
 *
 * Records: `document` (counters and every top-level key but nodes/links/groups), `node`,
 * `link`, `group`. A record is the JSON object itself plus `typeName`, a store `id` such as
 * `node:3`, `jsonId` (the object's own `id`, when it had one) and `rank`, its place in the
 * file, so that a record removed and restored by undo is written back where it was.
 */

export const DOCUMENT_ID = "document";
export const WRITTEN_VERSION = 0.4;

export const nodeKey = (nodeId) => `node:${nodeId}`;
export const linkKey = (linkId) => `link:${linkId}`;
export const groupKey = (groupId) => `group:${groupId}`;

export function toRecord(typeName, key, json, rank = 0) {
  const record = { ...json, typeName, id: `${typeName}:${key}`, rank };
  if ("id" in json) record.jsonId = json.id;
  return record;
}

export function fromRecord(record) {
  const { typeName, id, jsonId, rank, ...rest } = record;
  return jsonId === undefined ? rest : { id: jsonId, ...rest };
}

const asSlotIndex = (value) => (typeof value === "string" && value.trim() !== "" && !Number.isNaN(Number(value)) ? Number(value) : value);

function linkFromTuple(tuple) {
  const [id, origin_id, origin_slot, target_id, target_slot, type] = tuple;
  return { id, origin_id, origin_slot: asSlotIndex(origin_slot), target_id, target_slot: asSlotIndex(target_slot), type };
}

function linkFromObject(object) {
  return { ...object, origin_slot: asSlotIndex(object.origin_slot), target_slot: asSlotIndex(object.target_slot) };
}

function maxNumericId(items) {
  return items.reduce((max, item) => (Number.isFinite(Number(item.id)) ? Math.max(max, Number(item.id)) : max), 0);
}

/**
 * Records of a UI workflow (0.4 or 1). Throws on something that is not a workflow.
 * @returns {object[]} records, the document record first
 */
export function readWorkflow(workflow) {
  if (!workflow || typeof workflow !== "object" || !Array.isArray(workflow.nodes)) {
    throw new Error("not a UI workflow: no 'nodes' list");
  }
  const isV1 = Number(workflow.version) === 1;
  const { nodes, links = [], groups, last_node_id, last_link_id, state, reroutes, version, ...meta } = workflow;
  const linkObjects = (links ?? []).filter(Boolean).map((link) => (Array.isArray(link) ? linkFromTuple(link) : linkFromObject(link)));
  const extra = meta.extra && typeof meta.extra === "object" ? { ...meta.extra } : meta.extra;
  if (isV1) {
    if (reroutes?.length) extra.reroutes = reroutes;
    const extensions = linkObjects.filter((link) => link.parentId !== undefined).map((link) => ({ id: link.id, parentId: link.parentId }));
    if (extensions.length) extra.linkExtensions = extensions;
  }
  const documentRecord = {
    typeName: "document",
    id: DOCUMENT_ID,
    lastNodeId: Number(isV1 ? state?.lastNodeId : last_node_id) || maxNumericId(nodes),
    lastLinkId: Number(isV1 ? state?.lastLinkId : last_link_id) || maxNumericId(linkObjects),
    lastGroupId: Number(state?.lastGroupId) || maxNumericId(groups ?? []),
    hadGroups: groups !== undefined,
    meta: extra === undefined ? meta : { ...meta, extra },
  };
  const records = [documentRecord];
  nodes.forEach((node, index) => records.push(toRecord("node", node.id, normaliseNode(node), index)));
  linkObjects.forEach((link, index) => {
    const { parentId, ...plain } = link;
    records.push(toRecord("link", link.id, isV1 ? plain : link, index));
  });
  (groups ?? []).forEach((group, index) => records.push(toRecord("group", group.id ?? `n${index}`, group, index)));
  return records;
}

function normaliseNode(node) {
  const copy = { ...node };
  copy.pos = Array.isArray(node.pos) ? [Number(node.pos[0]) || 0, Number(node.pos[1]) || 0]
    : node.pos && typeof node.pos === "object" ? [Number(node.pos[0] ?? node.pos["0"]) || 0, Number(node.pos[1] ?? node.pos["1"]) || 0] : [0, 0];
  copy.size = Array.isArray(node.size) ? [...node.size] : node.size && typeof node.size === "object" ? [node.size[0], node.size[1]] : [240, 100];
  copy.flags = node.flags ?? {};
  copy.mode = node.mode ?? 0;
  copy.inputs = node.inputs ?? [];
  copy.outputs = node.outputs ?? [];
  copy.properties = node.properties ?? {};
  return copy;
}

export const byRank = (a, b) => a.rank - b.rank;

/**
 * Write records as a version 0.4 workflow.
 * @param {{document: object, nodes: object[], links: object[], groups: object[]}} parts in rank order
 */
export function writeWorkflow({ document, nodes, links, groups }) {
  const { extra, config, id, revision, ...otherMeta } = document.meta ?? {};
  const workflow = {};
  if (id !== undefined) workflow.id = id;
  if (revision !== undefined) workflow.revision = revision;
  workflow.last_node_id = document.lastNodeId;
  workflow.last_link_id = document.lastLinkId;
  workflow.nodes = nodes.map(fromRecord);
  workflow.links = links.map((link) => [link.jsonId, link.origin_id, link.origin_slot, link.target_id, link.target_slot, link.type]);
  if (groups.length || document.hadGroups) workflow.groups = groups.map(fromRecord);
  if (config !== undefined) workflow.config = config;
  if (extra !== undefined) workflow.extra = extra;
  Object.assign(workflow, otherMeta);
  workflow.version = WRITTEN_VERSION;
  return workflow;
}

/** Whether `json` is an API-format prompt (`{id: {class_type, inputs}}`, comfy-compat §3). */
export function isApiPrompt(json) {
  if (!json || typeof json !== "object" || Array.isArray(json) || Array.isArray(json.nodes)) return false;
  const entries = Object.values(json);
  return entries.length > 0 && entries.every((entry) => entry && typeof entry === "object" && typeof entry.class_type === "string");
}
