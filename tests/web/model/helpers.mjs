// Shared fixture loading for the model-layer tests (node --test).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseObjectInfo } from "../../../web/model/nodedefs.js";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, "../../..");
export const WORKFLOWS = path.join(REPO, "tests/fixtures/workflows");
const OBJECT_INFO = [path.join(REPO, "tests/fixtures/comfyui-object-info.json"), path.resolve(REPO, "../shared/docs/comfyui-object-info.json")];

export const readJson = (file) => JSON.parse(fs.readFileSync(file, "utf8"));

/** The /object_info of ComfyUI's core nodes, parsed (comfy-compat §1.7). */
export function coreDefs() {
  const file = OBJECT_INFO.find((candidate) => fs.existsSync(candidate));
  return parseObjectInfo(readJson(file));
}

/** Names of the UI-workflow fixtures that have an `.api.json` twin. */
export function workflowFixtures() {
  return fs.readdirSync(WORKFLOWS).filter((name) => name.endsWith(".json") && !name.endsWith(".api.json")).map((name) => name.replace(/\.json$/, ""));
}
