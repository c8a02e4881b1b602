/**
 * Import path that ComfyUI extensions use (`import { app } from "../../scripts/app.js"`):
 * Kiln's compatible app object (comfy-compat §7.3). Extensions are imported after the editor
 * has started, so `window.kiln` is set by then.
 */
export const app = window.kiln.app.compat;
