/** Import path `../../scripts/api.js` of ComfyUI extensions: Kiln's server client. */
export const api = window.kiln.app.api;
