/**
 * Entry point: start the editor and expose the test hook `window.kiln`
 * (`app`, `graph`, `graphToScreen`, `screenToGraph`) so browser tests need not click blind.
 */
import { KilnApp } from "./app.js";
import { layoutNode, slotPosition } from "./view/layout.js";

const app = new KilnApp(document.getElementById("app"));

window.kiln = {
  app,
  get editor() {
    return app.editor;
  },
  get graph() {
    return app.editor?.graph;
  },
  graphToScreen: (point) => app.editor.camera.graphToScreen(point),
  screenToGraph: (point) => app.editor.camera.screenToGraph(point),
  /** Page coordinates (for mouse events) of a graph point. */
  graphToPage(point) {
    const [x, y] = app.editor.camera.graphToScreen(point);
    const rect = app.canvas.getBoundingClientRect();
    return [x + rect.left, y + rect.top];
  },
  /** Page coordinates of a node's input or output dot. */
  slotToPage(nodeId, isInput, index) {
    const editor = app.editor;
    const node = editor.graph.node(nodeId);
    const layout = layoutNode(editor.graph, node, Boolean(editor.viewStatus.get(String(nodeId))?.images?.length));
    return this.graphToPage(slotPosition(layout, isInput, index));
  },
  ready: app.start().then(() => true, (error) => {
    console.error(error);
    document.getElementById("app").prepend(Object.assign(document.createElement("pre"), { className: "fatal", textContent: `Kiln could not start: ${error.message}` }));
    return false;
  }),
};
