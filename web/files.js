/**
 * Workflows in and out of the editor: Save (to the server's `/userdata/workflows/` and as a
 * download), Open (the server's list or a local file), export of the API prompt, and files
 * dropped on the canvas: UI or API `.json`, a PNG carrying a workflow (tEXt `workflow`, else
 * `prompt`, comfy-compat §5), or an image dropped on a LoadImage node (uploaded).
 */
import { promptToWorkflow } from "./model/apiimport.js";
import { workflowFromPng } from "./model/png.js";
import { isApiPrompt } from "./model/workflow.js";
import { h } from "./panels/dom.js";

const WORKFLOW_DIR = "workflows";

export function download(filename, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: filename, style: { display: "none" } });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export class WorkflowFiles {
  constructor(app) {
    this.app = app;
  }

  /** Ask for a name, then store the workflow on the server and offer it as a download. */
  save({ askName = true } = {}) {
    const editor = this.app.editor;
    const current = editor.path?.replace(/^workflows\//, "").replace(/\.json$/, "") ?? editor.name;
    const finish = async (name) => {
      const clean = name.trim().replace(/\.json$/i, "") || "workflow";
      const file = `${WORKFLOW_DIR}/${clean}.json`;
      const text = JSON.stringify(editor.serialize(), null, 2);
      try {
        await this.app.api.saveUserData(file, text);
        this.app.overlays.toast(`Saved ${file}`, "info");
      } catch (error) {
        this.app.overlays.toast(`Could not save on the server: ${error.message}`, "error");
      }
      editor.name = clean;
      editor.path = file;
      editor.modified = false;
      download(`${clean}.json`, text);
      this.app.tabsChanged();
    };
    if (!askName) return finish(current);
    const field = h("input", { class: "dialog-input", value: current, "data-testid": "save-name" });
    const close = this.app.overlays.dialog("Save workflow", field, [
      { label: "Save", action: () => finish(field.value) }, { label: "Cancel" }]);
    field.addEventListener("keydown", (event) => {
      event.stopPropagation();
      if (event.key === "Enter") {
        close();
        finish(field.value);
      }
    });
    field.focus();
    field.select();
  }

  async open() {
    let names = [];
    try {
      names = await this.app.api.listUserData(WORKFLOW_DIR);
    } catch {
      /* no workflows saved yet */
    }
    const list = h("div", { class: "open-list", "data-testid": "open-list" }, ...names.filter((name) => name.endsWith(".json")).map((name) => h("div", {
      class: "menu-item",
      onclick: async () => {
        close();
        const workflow = await this.app.api.getUserData(`${WORKFLOW_DIR}/${name}`);
        this.app.openWorkflow(workflow, name.replace(/\.json$/, ""), `${WORKFLOW_DIR}/${name}`);
      },
    }, name)));
    const close = this.app.overlays.dialog("Open workflow", [names.length ? list : h("p", {}, "No workflows saved on the server yet.")], [
      { label: "From file…", action: () => this.app.overlays.pickFile(".json,.png,application/json,image/png", (file) => this.openFile(file)) },
      { label: "Cancel" }]);
  }

  exportApi() {
    const { prompt, missingTypes } = this.app.execution.buildPrompt(this.app.editor);
    if (missingTypes.length) this.app.overlays.toast(`Exported without unknown node types: ${missingTypes.join(", ")}`, "error");
    download(`${this.app.editor.name}_api.json`, JSON.stringify(prompt, null, 2));
  }

  /** Open a dropped or picked file: workflow JSON (UI or API) or a PNG with an embedded workflow. */
  async openFile(file) {
    const name = file.name.replace(/\.(json|png)$/i, "");
    if (file.type === "image/png" || /\.png$/i.test(file.name)) {
      const found = workflowFromPng(await file.arrayBuffer());
      if (found.workflow) return this.app.openWorkflow(found.workflow, name);
      if (found.prompt) return this.app.openWorkflow(promptToWorkflow(found.prompt, this.app.defs), name);
      this.app.overlays.toast(`${file.name} carries no workflow`, "error");
      return null;
    }
    let json;
    try {
      json = JSON.parse(await file.text());
    } catch (error) {
      this.app.overlays.toast(`${file.name} is not JSON: ${error.message}`, "error");
      return null;
    }
    if (isApiPrompt(json)) return this.app.openWorkflow(promptToWorkflow(json, this.app.defs), name);
    if (Array.isArray(json?.nodes)) return this.app.openWorkflow(json, name);
    this.app.overlays.toast(`${file.name} is neither a UI workflow nor an API prompt`, "error");
    return null;
  }

  /** Handle a drop on the canvas at graph point `point`. */
  async drop(dataTransfer, point, hitNode) {
    const nodeType = dataTransfer.getData("application/x-kiln-node");
    if (nodeType) {
      this.app.addNode(nodeType, point);
      return;
    }
    const file = dataTransfer.files?.[0];
    if (!file) return;
    const isImage = file.type.startsWith("image/");
    const uploadWidget = hitNode && this.app.editor.graph.widgets(hitNode).some((widget) => widget.kind === "UPLOAD");
    if (isImage && uploadWidget) {
      await this.app.uploadToNode(hitNode.jsonId, file);
      return;
    }
    await this.openFile(file);
  }
}
