/**
 * Commands on litegraph's native reroutes (comfy-compat §4.1): points a link is drawn
 * through, stored as data, not nodes. A reroute is `{id, parentId?, pos, linkIds}`; a link's
 * `parentId` is the reroute nearest its target and each reroute's `parentId` the next one
 * towards the origin, so one reroute can carry several links from the same output. `linkIds`
 * lists every link that passes through the reroute. Every command is one store transaction.
 */
import { DOCUMENT_ID, rerouteKey, toRecord } from "./workflow.js";

/** The reroutes a link passes through, from its origin to its target. */
export function reroutePath(graph, link) {
  const path = [];
  const seen = new Set();
  let reroute = link.parentId == null ? undefined : graph.reroute(link.parentId);
  while (reroute && !seen.has(reroute.jsonId)) {
    seen.add(reroute.jsonId);
    path.unshift(reroute);
    reroute = reroute.parentId == null ? undefined : graph.reroute(reroute.parentId);
  }
  return path;
}

/** Links that pass through reroute `rerouteId` (its `linkIds`, limited to links that exist). */
export function linksThrough(graph, rerouteId) {
  return (graph.reroute(rerouteId)?.linkIds ?? []).map((id) => graph.link(id)).filter(Boolean);
}

/**
 * Put a new reroute at `pos` on segment `segment` of link `linkId` (segment 0 runs from the
 * origin to the first reroute, the last one ends at the target). Returns the new reroute's id.
 */
export function addReroute(graph, linkId, segment, pos) {
  const link = graph.link(linkId);
  if (!link) throw new Error(`no link ${linkId}`);
  const path = reroutePath(graph, link);
  const index = Math.max(0, Math.min(segment, path.length));
  const before = path[index - 1];
  const after = path[index];
  return graph.store.transact(() => {
    const id = graph.document.lastRerouteId + 1;
    graph.store.update(DOCUMENT_ID, { lastRerouteId: id });
    const linkIds = after ? [...(after.linkIds ?? [])] : [link.jsonId];
    const json = { id, pos: [pos[0], pos[1]], linkIds };
    if (before) json.parentId = before.jsonId;
    const rank = Math.max(-1, ...graph.reroutes().map((reroute) => reroute.rank)) + 1;
    graph.store.put([toRecord("reroute", id, json, rank)]);
    if (after) graph.store.put([{ ...after, parentId: id }]);
    else graph.store.put([{ ...link, parentId: id }]);
    return id;
  });
}

/** Move reroutes by (dx, dy). */
export function moveReroutes(graph, rerouteIds, dx, dy) {
  graph.store.put([...rerouteIds].map((id) => graph.reroute(id)).filter(Boolean)
    .map((reroute) => ({ ...reroute, pos: [reroute.pos[0] + dx, reroute.pos[1] + dy] })));
}

/** Remove reroutes; what ran through one now runs to its parent (or straight to the origin). */
export function removeReroutes(graph, rerouteIds) {
  graph.store.transact(() => {
    for (const rerouteId of rerouteIds) {
      const reroute = graph.reroute(rerouteId);
      if (!reroute) continue;
      const parentId = reroute.parentId;
      const reparent = (record) => {
        if (parentId == null) {
          const { parentId: dropped, extensionRank, ...rest } = record;
          return rest;
        }
        return { ...record, parentId };
      };
      graph.store.put(graph.reroutes().filter((child) => child.parentId === reroute.jsonId).map(reparent));
      graph.store.put(graph.links().filter((link) => link.parentId === reroute.jsonId).map(reparent));
      graph.store.remove([rerouteKey(reroute.jsonId)]);
    }
  });
}
