// Reading workflows back from PNG text chunks (comfy-compat §5) and opening API prompts.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import zlib from "node:zlib";
import { promptToWorkflow } from "../../../web/model/apiimport.js";
import { readPngText, workflowFromPng } from "../../../web/model/png.js";
import { workflowToPrompt } from "../../../web/model/prompt.js";
import { coreDefs, readJson, WORKFLOWS } from "./helpers.mjs";

const defs = coreDefs();

function chunk(type, data) {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(data.length, 0);
  header.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32 ? zlib.crc32(Buffer.concat([Buffer.from(type, "latin1"), data])) : 0);
  return Buffer.concat([header, data, crc]);
}

/** A 1×1 PNG with the given tEXt chunks, as PIL's PngInfo.add_text writes them. */
function pngWithText(texts) {
  const ihdr = Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]);
  const idat = zlib.deflateSync(Buffer.from([0, 255, 0, 0]));
  const textChunks = Object.entries(texts).map(([key, value]) => chunk("tEXt", Buffer.from(`${key}\0${value}`, "latin1")));
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), ...textChunks, chunk("IDAT", idat), chunk("IEND", Buffer.alloc(0))]);
}

test("tEXt chunks are read by keyword", () => {
  const png = pngWithText({ prompt: "{\"1\": {}}", workflow: "{\"nodes\": []}" });
  assert.deepEqual(readPngText(png), { prompt: "{\"1\": {}}", workflow: "{\"nodes\": []}" });
});

test("the workflow chunk is preferred, the prompt chunk is the fallback", () => {
  const workflow = readJson(path.join(WORKFLOWS, "default_text_to_image.json"));
  const prompt = readJson(path.join(WORKFLOWS, "default_text_to_image.api.json"));
  assert.deepEqual(workflowFromPng(pngWithText({ prompt: JSON.stringify(prompt), workflow: JSON.stringify(workflow) })), { workflow });
  assert.deepEqual(workflowFromPng(pngWithText({ prompt: JSON.stringify(prompt) })), { prompt });
  assert.deepEqual(workflowFromPng(pngWithText({})), {});
});

test("a file that is not a PNG is refused", () => {
  assert.throws(() => readPngText(Buffer.from("GIF89a")), /not a PNG/);
});

test("an API prompt opens as a graph that converts back to the same prompt", () => {
  const prompt = readJson(path.join(WORKFLOWS, "default_text_to_image.api.json"));
  const workflow = promptToWorkflow(prompt, defs);
  assert.equal(workflow.nodes.length, Object.keys(prompt).length);
  const back = workflowToPrompt(workflow, defs).prompt;
  assert.deepEqual(back, prompt);
});
