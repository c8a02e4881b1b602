/**
 * UI workflow JSON (comfy-compat §4.1–§4.3) to store records and back.
 *
 * Reads version 0.4 (links as tuples) and version 1 (links as objects, `state` counters,
 * top-level `reroutes`); writes version 0.4, what ComfyUI's Save and PNG embedding write.
 * Every key the editor does not manage is kept on its record, so unknown keys survive a round trip.
 *
 * Records: `document` (counters and every top-level key but nodes/links/groups), `node`,
 * `link`, `group`, `reroute` (litegraph's native reroutes: 0.4 `extra.reroutes`, 1 top-level
 * `reroutes`; a link's `parentId` names the reroute nearest its target, 0.4 keeps it in
 * `extra.linkExtensions`) and `definition` (one subgraph definition of `definitions.subgraphs`,
 * its nested definitions as records of their own whose `owner` is the definition that held them).
 * A record is the JSON object itself plus `typeName`, a store `id` such as `node:3`, `jsonId`
 * (the object's own `id`, when it had one) and `rank`, its place in the file, so that a record
 * removed and restored by undo is written back where it was.
 */

export const DOCUMENT_ID = "document";
export const WRITTEN_VERSION = 0.4;

export const nodeKey = (nodeId) => `node:${nodeId}`;
export const linkKey = (linkId) => `link:${linkId}`;
export const groupKey = (groupId) => `group:${groupId}`;
export const rerouteKey = (rerouteId) => `reroute:${rerouteId}`;
export const definitionKey = (subgraphId) => `definition:${subgraphId}`;

/** Record fields that are the editor's own bookkeeping, never written to a file. */
const LINK_BOOKKEEPING = ["extensionRank"];
const DEFINITION_BOOKKEEPING = ["owner", "nestedMeta"];

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
  const { nodes, links = [], groups, last_node_id, last_link_id, state, reroutes, version, definitions, ...meta } = workflow;
  const linkObjects = (links ?? []).filter(Boolean).map((link) => (Array.isArray(link) ? linkFromTuple(link) : linkFromObject(link)));
  const extra = meta.extra && typeof meta.extra === "object" ? { ...meta.extra } : meta.extra;
  const rerouteList = isV1 ? reroutes : extra?.reroutes;
  if (!isV1 && Array.isArray(extra?.linkExtensions)) {
    const byId = new Map(linkObjects.map((link) => [String(link.id), link]));
    extra.linkExtensions.forEach((extension, index) => {
      const link = byId.get(String(extension?.id));
      if (link && extension.parentId !== undefined) Object.assign(link, { parentId: extension.parentId, extensionRank: index });
    });
  }
  if (extra && !isV1) {
    delete extra.reroutes;
    delete extra.linkExtensions;
  }
  if (isV1) linkObjects.forEach((link, index) => { if (link.parentId !== undefined) link.extensionRank = index; });
  const documentRecord = {
    typeName: "document",
    id: DOCUMENT_ID,
    lastNodeId: Number(isV1 ? state?.lastNodeId : last_node_id) || maxNumericId(nodes),
    lastLinkId: Number(isV1 ? state?.lastLinkId : last_link_id) || maxNumericId(linkObjects),
    lastGroupId: Number(state?.lastGroupId) || maxNumericId(groups ?? []),
    lastRerouteId: Number(state?.lastRerouteId) || maxNumericId(rerouteList ?? []),
    hadGroups: groups !== undefined,
    hadReroutes: Array.isArray(rerouteList),
    meta: extra === undefined ? meta : { ...meta, extra },
  };
  if (isV1 && state !== undefined) documentRecord.meta.state = state;
  const records = [documentRecord];
  nodes.forEach((node, index) => records.push(toRecord("node", node.id, normaliseNode(node), index)));
  linkObjects.forEach((link, index) => records.push(toRecord("link", link.id, link, index)));
  (groups ?? []).forEach((group, index) => records.push(toRecord("group", group.id ?? `n${index}`, group, index)));
  (Array.isArray(rerouteList) ? rerouteList : []).filter((reroute) => reroute && reroute.id !== undefined)
    .forEach((reroute, index) => records.push(toRecord("reroute", reroute.id, reroute, index)));
  if (definitions !== undefined) {
    const { subgraphs, ...definitionsMeta } = definitions ?? {};
    documentRecord.definitionsMeta = definitionsMeta;
    documentRecord.hadSubgraphList = Array.isArray(subgraphs);
    records.push(...definitionRecords(subgraphs, null, { rank: 0 }));
  }
  return records;
}

/** Records of subgraph definitions added to a workflow (e.g. pasted), ranked from `rank` on. */
export function readDefinitions(subgraphs, rank = 0) {
  return definitionRecords(subgraphs, null, { rank });
}

/** Records of `definitions.subgraphs`, nested definitions flattened with their `owner`. */
function definitionRecords(subgraphs, owner, counter) {
  const records = [];
  for (const definition of Array.isArray(subgraphs) ? subgraphs : []) {
    if (!definition || typeof definition.id !== "string") continue;
    const { definitions: nested, ...own } = definition;
    const record = toRecord("definition", definition.id, own, counter.rank++);
    record.owner = owner;
    if (nested !== undefined) {
      const { subgraphs: inner, ...nestedMeta } = nested ?? {};
      record.nestedMeta = { ...nestedMeta, hadSubgraphList: Array.isArray(inner) };
      records.push(record, ...definitionRecords(inner, definition.id, counter));
    } else records.push(record);
  }
  return records;
}

/** A definition record's JSON, with the definitions nested in it put back. */
export function definitionJson(record, definitions) {
  const json = fromRecord(record);
  for (const key of DEFINITION_BOOKKEEPING) delete json[key];
  const children = definitions.filter((candidate) => candidate.owner === record.jsonId);
  if (record.nestedMeta || children.length) {
    const { hadSubgraphList, ...nestedMeta } = record.nestedMeta ?? {};
    json.definitions = { ...nestedMeta };
    if (children.length || hadSubgraphList) json.definitions.subgraphs = children.map((child) => definitionJson(child, definitions));
  }
  return json;
}

/** `definitions` of a workflow from its definition records, or undefined when it had none. */
function definitionsJson(document, definitions) {
  const top = definitions.filter((record) => record.owner === null || record.owner === undefined);
  if (document.definitionsMeta === undefined && !top.length) return undefined;
  const json = { ...(document.definitionsMeta ?? {}) };
  if (top.length || document.hadSubgraphList) json.subgraphs = top.map((record) => definitionJson(record, definitions));
  return json;
}

/** A link record as a version 1 LinkObject (with its `parentId`). */
function linkObject(link) {
  const json = fromRecord(link);
  for (const key of LINK_BOOKKEEPING) delete json[key];
  return json;
}

const byExtensionRank = (a, b) => (a.extensionRank ?? Infinity) - (b.extensionRank ?? Infinity) || a.rank - b.rank;

/** Native reroutes (0.4 `extra.reroutes` and `extra.linkExtensions`), or nothing when there are none. */
function rerouteExtras(document, links, reroutes) {
  if (!reroutes.length && !document.hadReroutes) return {};
  const withParent = links.filter((link) => link.parentId !== undefined && link.parentId !== null).sort(byExtensionRank);
  return {
    reroutes: reroutes.map(fromRecord),
    linkExtensions: withParent.map((link) => ({ id: link.jsonId, parentId: link.parentId })),
  };
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
 * @param {{document: object, nodes: object[], links: object[], groups: object[], reroutes?: object[], definitions?: object[]}} parts in rank order
 */
export function writeWorkflow({ document, nodes, links, groups, reroutes = [], definitions = [] }) {
  const { extra, config, id, revision, state, ...otherMeta } = document.meta ?? {};
  const workflow = {};
  if (id !== undefined) workflow.id = id;
  if (revision !== undefined) workflow.revision = revision;
  workflow.last_node_id = document.lastNodeId;
  workflow.last_link_id = document.lastLinkId;
  workflow.nodes = nodes.map(fromRecord);
  workflow.links = links.map((link) => [link.jsonId, link.origin_id, link.origin_slot, link.target_id, link.target_slot, link.type]);
  if (groups.length || document.hadGroups) workflow.groups = groups.map(fromRecord);
  if (config !== undefined) workflow.config = config;
  const rerouteData = rerouteExtras(document, links, reroutes);
  if (extra !== undefined || rerouteData.reroutes) workflow.extra = { ...(extra ?? {}), ...rerouteData };
  Object.assign(workflow, otherMeta);
  const definitionsOut = definitionsJson(document, definitions);
  if (definitionsOut !== undefined) workflow.definitions = definitionsOut;
  workflow.version = WRITTEN_VERSION;
  return workflow;
}

/**
 * Write records as a version 1 graph (§4.2): links as objects with `parentId`, top-level
 * `reroutes`, `state` counters. Subgraph definitions are version 1 graphs.
 */
export function writeWorkflowV1({ document, nodes, links, groups, reroutes = [], definitions = [] }) {
  const { state, ...meta } = document.meta ?? {};
  const workflow = { ...meta, version: 1 };
  workflow.state = { ...(state ?? {}), lastGroupId: document.lastGroupId, lastNodeId: document.lastNodeId, lastLinkId: document.lastLinkId, lastRerouteId: document.lastRerouteId ?? 0 };
  workflow.nodes = nodes.map(fromRecord);
  workflow.links = links.map(linkObject);
  if (groups.length || document.hadGroups) workflow.groups = groups.map(fromRecord);
  if (reroutes.length || document.hadReroutes) workflow.reroutes = reroutes.map(fromRecord);
  const definitionsOut = definitionsJson(document, definitions);
  if (definitionsOut !== undefined) workflow.definitions = definitionsOut;
  return workflow;
}

/** Whether `json` is an API-format prompt (`{id: {class_type, inputs}}`, comfy-compat §3). */
export function isApiPrompt(json) {
  if (!json || typeof json !== "object" || Array.isArray(json) || Array.isArray(json.nodes)) return false;
  const entries = Object.values(json);
  return entries.length > 0 && entries.every((entry) => entry && typeof entry === "object" && typeof entry.class_type === "string");
}
