// Fuzzy node search over name, display name and category, with type filters.
import assert from "node:assert/strict";
import { test } from "node:test";
import { typesCompatible } from "../../../web/model/nodedefs.js";
import { fuzzyScore, searchNodes } from "../../../web/model/search.js";
import { coreDefs } from "./helpers.mjs";

const defs = [...coreDefs().values()];

test("letters in order match, gaps lower the score, missing letters do not match", () => {
  assert.ok(fuzzyScore("ksm", "KSampler") > -Infinity);
  assert.equal(fuzzyScore("xyz", "KSampler"), -Infinity);
  assert.ok(fuzzyScore("ksampler", "KSampler") > fuzzyScore("ksampler", "KSamplerAdvanced"));
});

test("search finds nodes by display name, class name and category", () => {
  assert.equal(searchNodes(defs, "ksampler")[0].name, "KSampler");
  assert.equal(searchNodes(defs, "Load Checkpoint")[0].name, "CheckpointLoaderSimple");
  assert.ok(searchNodes(defs, "vae dec").some((def) => def.name === "VAEDecode"));
  assert.ok(searchNodes(defs, "latent", { limit: 200 }).some((def) => def.category.startsWith("latent")));
});

test("a link dragged from an output only offers nodes that accept its type", () => {
  const results = searchNodes(defs, "", { inputType: "LATENT", typesCompatible, limit: 500 });
  assert.ok(results.length > 0);
  assert.ok(results.every((def) => def.inputs.some((input) => typesCompatible("LATENT", input.type))));
  assert.ok(results.some((def) => def.name === "VAEDecode"));
  assert.ok(!results.some((def) => def.name === "CheckpointLoaderSimple"));
});

test("types are compatible when equal, wildcard, or sharing an alternative", () => {
  assert.equal(typesCompatible("IMAGE", "IMAGE"), true);
  assert.equal(typesCompatible("IMAGE", "*"), true);
  assert.equal(typesCompatible("IMAGE,MASK", "MASK"), true);
  assert.equal(typesCompatible("IMAGE", "LATENT"), false);
});
