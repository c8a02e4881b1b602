/**
 * Colours of the canvas. Slot and link colours follow the type palette users know from
 * ComfyUI; other types get a stable colour from a hash of their name.
 */

const TYPE_COLORS = {
  MODEL: "#b39ddb", CLIP: "#ffd500", VAE: "#ff6e6e", CONDITIONING: "#ffa931", LATENT: "#ff9cf9",
  IMAGE: "#64b5f6", MASK: "#81c784", CONTROL_NET: "#00d78d", CLIP_VISION: "#a8dadc", CLIP_VISION_OUTPUT: "#ad7452",
  STYLE_MODEL: "#c2ffae", UPSCALE_MODEL: "#4b8fc2", SAMPLER: "#ecb4b4", SIGMAS: "#cdffcd", NOISE: "#b0b0b0",
  GUIDER: "#66ffff", INT: "#7fbf7f", FLOAT: "#7fbfbf", STRING: "#bfbf7f", BOOLEAN: "#bf7fbf", COMBO: "#9fa8da",
};

/** A stable colour for any slot type. */
export function typeColor(type) {
  const key = String(type ?? "*").toUpperCase();
  if (TYPE_COLORS[key]) return TYPE_COLORS[key];
  if (key === "*" || key === "") return "#aaaaaa";
  let hash = 0;
  for (const char of key) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360}, 55%, 65%)`;
}

export const THEMES = {
  dark: {
    name: "dark", background: "#1e1e1e", grid: "#2a2a2a", gridStrong: "#333333",
    nodeBody: "#353535", nodeTitle: "#2a2a2a", nodeTitleText: "#dddddd", nodeText: "#bbbbbb", nodeBorder: "#111111",
    widgetBg: "#222222", widgetText: "#dddddd", widgetLabel: "#999999", widgetBorder: "#555555",
    selection: "#ffffff", running: "#00e676", error: "#ff3b3b", missing: "#b33a3a", bypass: "rgba(190, 60, 220, 0.35)",
    groupText: "#eeeeee", linkAlpha: 0.9, boxSelect: "rgba(120, 170, 255, 0.15)", boxSelectBorder: "#78aaff",
  },
  light: {
    name: "light", background: "#f2f2f2", grid: "#e2e2e2", gridStrong: "#d6d6d6",
    nodeBody: "#ffffff", nodeTitle: "#dfe3ea", nodeTitleText: "#222222", nodeText: "#333333", nodeBorder: "#9a9a9a",
    widgetBg: "#eef0f3", widgetText: "#222222", widgetLabel: "#666666", widgetBorder: "#b8b8b8",
    selection: "#2060d0", running: "#0a9d4a", error: "#d01010", missing: "#e07a7a", bypass: "rgba(190, 60, 220, 0.25)",
    groupText: "#222222", linkAlpha: 1, boxSelect: "rgba(32, 96, 208, 0.12)", boxSelectBorder: "#2060d0",
  },
};
