/**
 * User settings, kept in localStorage and mirrored to the server's `/settings`
 * (comfy-compat §1.2, `comfy.settings.json`) so they follow the user between browsers.
 */
import { h } from "./dom.js";

export const SETTING_DEFAULTS = {
  "Kiln.Theme": "dark",
  "Kiln.ShowMinimap": true,
  "Kiln.ShowLibrary": true,
  "Comfy.WidgetControlMode": "after",
  "Kiln.LinkRenderMode": "spline",
};

export class Settings {
  constructor(api) {
    this.api = api;
    this.values = { ...SETTING_DEFAULTS, ...JSON.parse(localStorage.getItem("kiln.settings") ?? "{}") };
  }

  async loadFromServer() {
    try {
      const remote = await this.api.settings();
      for (const key of Object.keys(SETTING_DEFAULTS)) if (key in (remote ?? {})) this.values[key] = remote[key];
      localStorage.setItem("kiln.settings", JSON.stringify(this.values));
    } catch {
      /* offline: localStorage is enough */
    }
  }

  get(key) {
    return this.values[key] ?? SETTING_DEFAULTS[key];
  }

  set(key, value) {
    this.values[key] = value;
    localStorage.setItem("kiln.settings", JSON.stringify(this.values));
    this.api.saveSetting(key, value).catch(() => {});
  }

  /** The settings form; `onChange(key)` after each change. */
  body(onChange) {
    const row = (label, control) => h("label", { class: "setting" }, h("span", {}, label), control);
    const select = (key, options) => {
      const element = h("select", { onchange: () => { this.set(key, element.value); onChange(key); } }, ...options.map((option) => h("option", { value: option, selected: this.get(key) === option }, option)));
      return element;
    };
    const checkbox = (key) => {
      const element = h("input", { type: "checkbox", checked: Boolean(this.get(key)), onchange: () => { this.set(key, element.checked); onChange(key); } });
      return element;
    };
    return h("div", { class: "settings" },
      row("Theme", select("Kiln.Theme", ["dark", "light"])),
      row("Show minimap", checkbox("Kiln.ShowMinimap")),
      row("Show node library", checkbox("Kiln.ShowLibrary")),
      row("Widget control mode", select("Comfy.WidgetControlMode", ["after", "before"])));
  }
}
