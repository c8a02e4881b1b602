/**
 * Changes to a workflow's subgraph definition records (comfy-compat §4.3) that are not undo
 * steps of the workflow: an opened definition's inner graph writes its edits back (it keeps
 * its own history), and pasted subgraph instances bring the definitions they need (an unused
 * definition is harmless, so undoing the paste may keep it). Both reach store listeners with
 * source "subgraph", which the workflow's history does not record.
 */
import { definitionJson, readDefinitions, toRecord } from "./workflow.js";

/** Replace the definition `json.id` of workflow graph `root` by `json` (its nested definitions stay records of their own). */
export function putDefinition(root, json) {
  const before = root.subgraphDefinition(json.id);
  if (!before) throw new Error(`no subgraph definition ${json.id}`);
  const { definitions, ...own } = json;
  const after = { ...toRecord("definition", json.id, own, before.rank), owner: before.owner };
  if (before.nestedMeta) after.nestedMeta = before.nestedMeta;
  root.store.applyDiff({ added: {}, updated: { [before.id]: [before, after] }, removed: {} }, "subgraph");
}

/** Add to `root` the definitions (saved JSON, nested ones inside) it does not have yet. */
export function adoptDefinitions(root, definitions) {
  const missing = (definitions ?? []).filter((definition) => typeof definition?.id === "string" && !root.subgraphDefinition(definition.id));
  if (!missing.length) return;
  const rank = Math.max(-1, ...root.definitions().map((record) => record.rank)) + 1;
  const added = Object.fromEntries(readDefinitions(missing, rank).map((record) => [record.id, record]));
  root.store.applyDiff({ added, updated: {}, removed: {} }, "subgraph");
}

/** The definitions (saved JSON, with what they nest) that instances among `nodes` need. */
export function definitionsFor(root, nodes) {
  const all = root.definitions();
  return [...new Set(nodes.map((node) => node.type))].map((type) => root.subgraphDefinition(type)).filter(Boolean)
    .map((record) => definitionJson(record, all));
}
