// widgets_values <-> widgets (comfy-compat §4.4) and control_after_generate.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  applyControlAfterGenerate, constrainNumber, defaultWidgetValues, nextControlledValue, valuesForWidgets, widgetsForDef,
} from "../../../web/model/widgets.js";
import { coreDefs } from "./helpers.mjs";

const defs = coreDefs();
const widgetsOf = (type) => widgetsForDef(defs.get(type));
const names = (type) => widgetsOf(type).map((widget) => widget.name);

test("KSampler's seed is followed by a control_after_generate widget", () => {
  assert.deepEqual(names("KSampler"), ["seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler", "denoise"]);
  assert.deepEqual(defaultWidgetValues(widgetsOf("KSampler")).slice(0, 3), [0, "randomize", 20]);
});

test("KSamplerAdvanced's noise_seed gets the control widget by the legacy name rule", () => {
  assert.deepEqual(names("KSamplerAdvanced"), ["add_noise", "noise_seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler", "start_at_step", "end_at_step", "return_with_leftover_noise"]);
});

test("LoadImage's image combo is followed by the upload button saved as 'image'", () => {
  assert.deepEqual(names("LoadImage"), ["image", "upload"]);
  const widgets = widgetsOf("LoadImage");
  assert.deepEqual(valuesForWidgets(widgets, ["photo (1).png", "image"]), ["photo (1).png", "image"]);
  assert.equal(widgets[1].serialize, false);
});

test("link-only inputs and forceInput inputs get no widget", () => {
  assert.deepEqual(names("VAEDecode"), []);
  assert.deepEqual(names("CLIPTextEncode"), ["text"]);
});

test("saved values are matched to widgets in creation order", () => {
  const values = valuesForWidgets(widgetsOf("KSampler"), [156680208700286, "fixed", 25, 7.5, "dpmpp_2m", "karras", 0.9]);
  assert.deepEqual(values, [156680208700286, "fixed", 25, 7.5, "dpmpp_2m", "karras", 0.9]);
});

test("an old file without the control entry keeps its later values in place", () => {
  const values = valuesForWidgets(widgetsOf("KSampler"), [5, 25, 7.5, "dpmpp_2m", "karras", 0.9]);
  assert.deepEqual(values, [5, "randomize", 25, 7.5, "dpmpp_2m", "karras", 0.9]);
});

test("widgets_values written as a dict are read by widget name", () => {
  const values = valuesForWidgets(widgetsOf("EmptyLatentImage"), { height: 768, width: 512 });
  assert.deepEqual(values, [512, 768, 1]);
});

test("numbers are clamped to min/max and rounded to the widget's precision", () => {
  const [width] = widgetsOf("EmptyLatentImage");
  assert.equal(constrainNumber(width, 3), width.options.min);
  assert.equal(constrainNumber(width, 1e9), width.options.max);
  assert.equal(constrainNumber(width, 100.6), 101);
  const cfg = widgetsOf("KSampler")[3];
  assert.equal(constrainNumber(cfg, 7.456), 7.46);
});

test("control_after_generate moves the seed after a queue", () => {
  const widgets = widgetsOf("KSampler");
  const seed = widgets[0];
  assert.equal(nextControlledValue("fixed", seed, 10), 10);
  assert.equal(nextControlledValue("increment", seed, 10), 11);
  assert.equal(nextControlledValue("decrement", seed, 10), 9);
  assert.equal(nextControlledValue("decrement", seed, 0), 0);
  const random = nextControlledValue("randomize", seed, 10, () => 0.5);
  assert.ok(random >= seed.options.min && random <= seed.options.max && random !== 10);
  const values = [10, "increment", 20, 8, "euler", "normal", 1];
  assert.deepEqual(applyControlAfterGenerate(widgets, values), [11, "increment", 20, 8, "euler", "normal", 1]);
});
