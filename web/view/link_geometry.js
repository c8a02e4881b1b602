/**
 * Where a link runs on the canvas: from its origin slot through its native reroutes to its
 * target slot, one curve per segment (litegraph's spline: horizontal tangents at both ends).
 * Shared by the renderer (to draw) and the pointer handling (to find the link under the
 * pointer), so both agree.
 */
import { reroutePath } from "../model/reroutes.js";
import { slotPosition } from "./layout.js";

export const REROUTE_RADIUS = 6;
const CURVE_SAMPLES = 16;

/** The points a link passes through: origin slot, each reroute, target slot. */
export function linkPoints(graph, link, layoutOf) {
  const origin = graph.node(link.origin_id);
  const target = graph.node(link.target_id);
  if (!origin || !target) return null;
  const points = [slotPosition(layoutOf(origin), false, link.origin_slot)];
  if (link.parentId != null) for (const reroute of reroutePath(graph, link)) points.push(reroute.pos);
  points.push(slotPosition(layoutOf(target), true, link.target_slot));
  return points;
}

/** The two control points of the curve from `from` to `to`. */
export function curveControls(from, to) {
  const bend = Math.max(40, Math.abs(to[0] - from[0]) * 0.5);
  return [[from[0] + bend, from[1]], [to[0] - bend, to[1]]];
}

function bezierPoint(p0, p1, p2, p3, t) {
  const u = 1 - t;
  const a = u * u * u;
  const b = 3 * u * u * t;
  const c = 3 * u * t * t;
  const d = t * t * t;
  return [a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0], a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]];
}

function distanceToLine(point, a, b) {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const lengthSquared = dx * dx + dy * dy;
  const t = lengthSquared ? Math.max(0, Math.min(1, ((point[0] - a[0]) * dx + (point[1] - a[1]) * dy) / lengthSquared)) : 0;
  return Math.hypot(point[0] - (a[0] + t * dx), point[1] - (a[1] + t * dy));
}

/** Distance from `point` to the curve between `from` and `to` (sampled). */
export function distanceToCurve(point, from, to) {
  const [c1, c2] = curveControls(from, to);
  let best = Infinity;
  let previous = from;
  for (let i = 1; i <= CURVE_SAMPLES; i++) {
    const next = bezierPoint(from, c1, c2, to, i / CURVE_SAMPLES);
    best = Math.min(best, distanceToLine(point, previous, next));
    previous = next;
  }
  return best;
}

/**
 * The link segment nearest `point` within `tolerance`: `{link, segment, distance}` or null.
 * Segment 0 runs from the origin to the first reroute.
 */
export function linkAt(graph, point, layoutOf, tolerance) {
  let found = null;
  for (const link of graph.links()) {
    const points = linkPoints(graph, link, layoutOf);
    if (!points) continue;
    for (let segment = 0; segment < points.length - 1; segment++) {
      const from = points[segment];
      const to = points[segment + 1];
      if (point[0] < Math.min(from[0], to[0]) - 60 - tolerance || point[0] > Math.max(from[0], to[0]) + 60 + tolerance) continue;
      if (point[1] < Math.min(from[1], to[1]) - tolerance || point[1] > Math.max(from[1], to[1]) + tolerance) continue;
      const distance = distanceToCurve(point, from, to);
      if (distance <= tolerance && (!found || distance < found.distance)) found = { link, segment, distance };
    }
  }
  return found;
}

/** The native reroute under `point`, if any. */
export function rerouteAt(graph, point, radius = REROUTE_RADIUS + 3) {
  const reroutes = graph.reroutes();
  for (let i = reroutes.length - 1; i >= 0; i--) {
    const { pos } = reroutes[i];
    if (Array.isArray(pos) && Math.hypot(point[0] - pos[0], point[1] - pos[1]) <= radius) return reroutes[i];
  }
  return null;
}
