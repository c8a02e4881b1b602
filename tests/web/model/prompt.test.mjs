// UI workflow -> API prompt (comfy-compat §4.5), checked against the recorded twins of
// tests/fixtures/workflows (each `<name>.api.json` is what ComfyUI's frontend sends).
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { bypassInputFor, restrictToTargets, workflowToPrompt } from "../../../web/model/prompt.js";
import { coreDefs, readJson, WORKFLOWS, workflowFixtures } from "./helpers.mjs";

const defs = coreDefs();
const load = (name) => readJson(path.join(WORKFLOWS, `${name}.json`));
// Subgraph flattening is not implemented in the editor (the server compiles such workflows).
const SUPPORTED = workflowFixtures().filter((name) => !name.startsWith("subgraph"));

for (const name of SUPPORTED) {
  test(`${name} converts to its recorded API prompt`, () => {
    const { prompt, missingTypes } = workflowToPrompt(load(name), defs);
    assert.deepEqual(missingTypes, []);
    assert.deepEqual(prompt, load(`${name}.api`));
  });
}

test("a muted node vanishes and inputs that depended on it are dropped", () => {
  const { prompt } = workflowToPrompt(load("mute"), defs);
  assert.equal(prompt["7"], undefined);
  assert.equal(prompt["3"].inputs.negative, undefined);
  assert.equal(prompt["9"].inputs.images, undefined);
});

test("a bypassed node is skipped by rewiring to its matching input", () => {
  const { prompt } = workflowToPrompt(load("bypass"), defs);
  assert.equal(prompt["10"], undefined);
  assert.deepEqual(prompt["3"].inputs.model, ["4", 0]);
  assert.deepEqual(prompt["6"].inputs.clip, ["4", 1]);
});

test("bypass picks the same slot when compatible, else the first input of the wanted type", () => {
  const node = { inputs: [{ type: "MODEL" }, { type: "CLIP" }, { type: "LATENT" }] };
  assert.equal(bypassInputFor(node, 1, "CLIP"), 1);
  assert.equal(bypassInputFor(node, 0, "LATENT"), 2);
  assert.equal(bypassInputFor(node, 0, "IMAGE"), -1);
});

test("a primitive's value replaces the widget input it drives", () => {
  const { prompt } = workflowToPrompt(load("primitive"), defs);
  assert.equal(prompt["3"].inputs.seed, 1234);
  assert.equal(prompt["6"].inputs.text, "a photo of a cat");
  assert.equal(prompt["10"], undefined);
});

test("legacy Reroute nodes pass links through", () => {
  const { prompt } = workflowToPrompt(load("reroute_node"), defs);
  assert.deepEqual(prompt["3"].inputs.model, ["4", 0]);
  assert.deepEqual(prompt["8"].inputs.vae, ["4", 2]);
  assert.equal(Object.values(prompt).some((entry) => entry.class_type === "Reroute"), false);
});

test("array widget values are wrapped so they cannot look like links", () => {
  const workflow = load("default_text_to_image");
  workflow.nodes.find((node) => node.type === "CLIPTextEncode").widgets_values = [["a", "b"]];
  const { prompt } = workflowToPrompt(workflow, defs);
  assert.ok(Object.values(prompt).some((entry) => entry.inputs.text?.__value__?.length === 2));
});

test("unknown node types are reported as missing", () => {
  const workflow = load("default_text_to_image");
  workflow.nodes[0].type = "NotInstalledNode";
  assert.deepEqual(workflowToPrompt(workflow, defs).missingTypes, ["NotInstalledNode"]);
});

test("partial execution keeps only the targets and their ancestors", () => {
  const { prompt } = workflowToPrompt(load("mute"), defs);
  assert.deepEqual(Object.keys(restrictToTargets(prompt, ["13"])).sort(), ["13", "3", "4", "5", "6", "8"].sort());
});
