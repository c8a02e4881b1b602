// Kiln example plugin: a browser extension served at /extensions/example/example.js.
// Extensions are ES modules that register with the editor's app object, as in ComfyUI.
import { app } from "../../scripts/app.js";

app.registerExtension({
  name: "kiln.example",
  // Called once per node type before it is registered: decorate the example nodes.
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData.name.startsWith("Example")) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      if (output?.text) this.title = `${nodeData.display_name}: ${output.text.join(", ")}`;
    };
  },
});
