// Pan and zoom in litegraph's convention (screen = (graph + offset) * scale, saved as extra.ds).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Camera, MAX_SCALE, MIN_SCALE, rectContains, rectsOverlap } from "../../../web/view/camera.js";
import { wheelZoomFactor } from "../../../web/interaction/pointer.js";

const close = (actual, expected) => assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} != ${expected}`);

test("graph and screen coordinates convert both ways", () => {
  const camera = new Camera(2, [10, -5]);
  assert.deepEqual(camera.graphToScreen([0, 0]), [20, -10]);
  assert.deepEqual(camera.screenToGraph(camera.graphToScreen([123, 45])), [123, 45]);
});

test("zooming keeps the graph point under the cursor fixed", () => {
  const camera = new Camera(1, [30, 40]);
  const anchor = [400, 300];
  const before = camera.screenToGraph(anchor);
  camera.zoomAt(1.7, anchor);
  const after = camera.screenToGraph(anchor);
  close(after[0], before[0]);
  close(after[1], before[1]);
  assert.equal(camera.scale, 1.7);
});

test("zoom is clamped", () => {
  const camera = new Camera();
  camera.zoomAt(1000, [0, 0]);
  assert.equal(camera.scale, MAX_SCALE);
  camera.zoomAt(1e-6, [0, 0]);
  assert.equal(camera.scale, MIN_SCALE);
});

test("fit shows the whole rectangle centred, never enlarged past 100 %", () => {
  const camera = new Camera();
  camera.fit([100, 200, 2000, 1000], 1000, 800, 40);
  const visible = camera.visibleRect(1000, 800);
  assert.ok(rectContains(visible, [100, 200, 2000, 1000]));
  close(visible[0] + visible[2] / 2, 1100);
  camera.fit([0, 0, 10, 10], 1000, 800);
  assert.equal(camera.scale, 1);
});

test("panning moves the view by screen pixels", () => {
  const camera = new Camera(0.5, [0, 0]);
  camera.panBy(100, 50);
  assert.deepEqual(camera.offset, [200, 100]);
  assert.deepEqual(camera.toDs(), { scale: 0.5, offset: [200, 100] });
});

test("rectangles overlap when they share any area", () => {
  assert.equal(rectsOverlap([0, 0, 10, 10], [5, 5, 10, 10]), true);
  assert.equal(rectsOverlap([0, 0, 10, 10], [10, 0, 5, 5]), false);
});

test("a trackpad pinch (Ctrl+wheel) zooms more gently than a wheel notch, in the same direction", () => {
  const notch = wheelZoomFactor({ deltaY: -100, deltaMode: 0, ctrlKey: false });
  const pinch = wheelZoomFactor({ deltaY: -100, deltaMode: 0, ctrlKey: true });
  assert.ok(notch > pinch && pinch > 1, `${notch} ${pinch}`);
  assert.ok(wheelZoomFactor({ deltaY: 3, deltaMode: 0, ctrlKey: true }) < 1);
});
