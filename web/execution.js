/**
 * Queueing and following runs: the graph is converted to an API prompt (model/prompt.js) and
 * POSTed with the UI workflow in `extra_data.extra_pnginfo.workflow`; websocket events
 * (comfy-compat §2) then mark the running node, its progress and live preview, the images of
 * output nodes, and errors. control_after_generate is applied after each queued prompt.
 */
import { workflowToPrompt } from "./model/prompt.js";
import { applyControlAfterGenerate } from "./model/widgets.js";

/** The canvas node an id refers to: subgraph-inner ids `"12:5"` show on instance `12` (§3). */
export const canvasNodeId = (nodeId) => String(nodeId).split(":")[0];

export class Execution {
  constructor(app) {
    this.app = app;
    this.promptTabs = new Map();
    this.runningPromptId = null;
    this.queueRemaining = 0;
    const { api } = app;
    const on = (type, handler) => api.addEventListener(type, (event) => {
      handler(event.detail);
      app.markDirty();
    });
    on("status", (data) => this.onStatus(data));
    on("execution_start", (data) => this.onStart(data));
    on("execution_cached", (data) => this.onCached(data));
    on("executing", (data) => this.onExecuting(data));
    on("progress", (data) => this.onProgress(data));
    on("executed", (data) => this.onExecuted(data));
    on("execution_error", (data) => this.onError(data));
    on("execution_interrupted", (data) => this.onInterrupted(data));
    on("execution_success", () => {});
    on("b_preview", (data) => this.onPreview(data));
  }

  editorFor(promptId) {
    return this.promptTabs.get(promptId) ?? this.app.editor;
  }

  /**
   * The API prompt of a tab and the node types the server does not know. Subgraph instances
   * (whose type is a definition's UUID, §4.3) are not flattened here: such a workflow is sent
   * as is and the server compiles it (`serverCompiles`).
   */
  buildPrompt(editor) {
    const workflow = editor.serialize();
    const subgraphIds = new Set((workflow.definitions?.subgraphs ?? []).map((subgraph) => subgraph.id));
    const { prompt, missingTypes } = workflowToPrompt(workflow, this.app.defs);
    return { workflow, prompt, missingTypes: missingTypes.filter((type) => !subgraphIds.has(type)), serverCompiles: subgraphIds.size > 0 };
  }

  /** Queue the active tab `count` times (front: ahead of the queue). */
  async queue({ front = false, count = 1 } = {}) {
    const editor = this.app.editor;
    const controlBefore = this.app.settings.get("Comfy.WidgetControlMode") === "before";
    for (let run = 0; run < count; run++) {
      if (controlBefore) this.applyControls(editor);
      const { workflow, prompt, missingTypes, serverCompiles } = this.buildPrompt(editor);
      if (missingTypes.length) {
        this.app.overlays.dialog("Missing node types", `This workflow uses node types that this server does not have: ${missingTypes.join(", ")}. Install the custom nodes that provide them (into custom_nodes/) and restart Kiln, or remove those nodes.`);
        return null;
      }
      let response;
      try {
        response = serverCompiles ? await this.app.api.queueWorkflow(workflow, { front })
          : await this.app.api.queuePrompt(prompt, workflow, { front });
      } catch (error) {
        this.showValidationErrors(editor, error.body);
        return null;
      }
      this.clearErrors(editor);
      this.promptTabs.set(response.prompt_id, editor);
      this.app.lastPrompt = { prompt, workflow, promptId: response.prompt_id };
      if (!controlBefore) this.applyControls(editor);
    }
    this.app.queuePanel.refresh();
    return this.app.lastPrompt?.promptId ?? null;
  }

  /** Advance seeds etc. whose control_after_generate is not "fixed" (one undo step). */
  applyControls(editor) {
    const graph = editor.rootGraph;
    graph.history.group(() => {
      for (const node of graph.nodes()) {
        const widgets = graph.widgets(node);
        if (!widgets.some((widget) => widget.kind === "CONTROL") || node.mode === 2 || node.mode === 4) continue;
        const values = graph.widgetValues(node);
        const next = applyControlAfterGenerate(widgets, values);
        next.forEach((value, index) => {
          if (value !== values[index]) graph.setWidgetValue(node.jsonId, index, value);
        });
      }
    });
  }

  clearErrors(editor) {
    for (const status of editor.status.values()) status.error = null;
  }

  /** Show a 400 answer: the message, and each node's errors on the node. */
  showValidationErrors(editor, body) {
    this.clearErrors(editor);
    const nodeErrors = body?.node_errors ?? {};
    for (const [nodeId, entry] of Object.entries(nodeErrors)) {
      const text = (entry.errors ?? []).map((error) => `${error.message}${error.details ? `: ${error.details}` : ""}`).join("\n");
      const status = editor.nodeStatus(canvasNodeId(nodeId));
      status.error = [status.error, text || "invalid"].filter(Boolean).join("\n");
    }
    const message = body?.error?.message ?? (typeof body === "string" ? body : "The server refused the prompt");
    const details = body?.error?.details ? ` (${body.error.details})` : "";
    this.app.overlays.toast(`${message}${details}`, "error", 8000);
    this.app.markDirty();
  }

  onStatus(data) {
    this.queueRemaining = data?.status?.exec_info?.queue_remaining ?? 0;
    this.app.ui.setQueueSize?.(this.queueRemaining);
    this.app.queuePanel.refresh();
  }

  onStart({ prompt_id }) {
    this.runningPromptId = prompt_id;
    const editor = this.editorFor(prompt_id);
    editor.clearRunStatus();
    for (const status of editor.status.values()) status.imageRefs = null;
  }

  onCached() {}

  onExecuting({ node, prompt_id }) {
    const editor = this.editorFor(prompt_id ?? this.runningPromptId);
    for (const status of editor.status.values()) {
      status.running = false;
      status.progress = null;
    }
    if (node === null || node === undefined) {
      this.runningPromptId = null;
      this.app.queuePanel.refresh();
      if (prompt_id) this.showStoredOutputs(editor, prompt_id);
      return;
    }
    editor.nodeStatus(canvasNodeId(node)).running = true;
  }

  onProgress({ value, max, node, prompt_id }) {
    const editor = this.editorFor(prompt_id);
    if (node !== undefined && node !== null) editor.nodeStatus(canvasNodeId(node)).progress = { value, max };
  }

  onExecuted({ node, display_node, output, prompt_id }) {
    const editor = this.editorFor(prompt_id);
    const nodeId = canvasNodeId(display_node ?? node);
    const images = output?.images ?? [];
    const status = editor.nodeStatus(nodeId);
    status.preview = null;
    if (Array.isArray(output?.text)) status.text = output.text.join("\n");
    if (images.length) {
      status.images = images.map((image) => this.app.loadImage(this.app.api.viewUrl(image)));
      status.imageIndex = 0;
      status.imageRefs = images;
      this.app.queuePanel.addImages(images.filter((image) => image.type === "output"));
    }
    this.app.extensions.nodeExecuted(editor, nodeId, output);
  }

  /**
   * Outputs reused from the cache may arrive with `executed.output` null (§2.1); the history
   * entry has every output of the prompt, so nodes still without images take them from there.
   */
  async showStoredOutputs(editor, promptId) {
    let entry;
    try {
      entry = (await this.app.api.fetchJson(`/history/${encodeURIComponent(promptId)}`))?.[promptId];
    } catch {
      return;
    }
    for (const [nodeId, output] of Object.entries(entry?.outputs ?? {})) {
      const status = editor.nodeStatus(canvasNodeId(nodeId));
      if (status.imageRefs || !output?.images?.length) continue;
      this.onExecuted({ node: nodeId, output, prompt_id: promptId });
    }
    this.app.markDirty();
  }

  onError(data) {
    const editor = this.editorFor(data.prompt_id);
    if (data.node_id !== undefined) {
      const status = editor.nodeStatus(canvasNodeId(data.node_id));
      status.error = `${data.exception_type}: ${data.exception_message}`;
      status.running = false;
    }
    this.app.overlays.toast(`Error in ${data.node_type ?? "a node"} (#${data.node_id}): ${data.exception_message}`, "error", 10000);
  }

  onInterrupted(data) {
    // The prompt is over once interrupted: no node is running any more, even before the
    // closing `executing {node: null}` arrives.
    const editor = this.editorFor(data.prompt_id ?? this.runningPromptId);
    for (const status of editor.status.values()) {
      status.running = false;
      status.progress = null;
    }
    this.app.overlays.toast(`Interrupted${data.node_type ? ` at ${data.node_type}` : ""}`, "info");
    this.app.markDirty();
  }

  onPreview({ blob, meta }) {
    const promptId = meta?.prompt_id ?? this.runningPromptId;
    const editor = this.editorFor(promptId);
    const metaId = meta?.display_node_id ?? meta?.node_id;
    const nodeId = metaId !== undefined ? canvasNodeId(metaId) : [...editor.status.entries()].find(([, status]) => status.running)?.[0];
    if (nodeId === undefined) return;
    const status = editor.nodeStatus(nodeId);
    const previous = status.preview?.src;
    status.preview = this.app.loadImage(URL.createObjectURL(blob));
    status.images ??= [];
    if (!status.images.length) status.images = [status.preview];
    if (previous?.startsWith("blob:")) setTimeout(() => URL.revokeObjectURL(previous), 1000);
  }
}
