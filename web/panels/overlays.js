/**
 * Floating DOM pieces over the canvas: context menus, the in-place text editor for a
 * widget, the list chooser for combos, toasts, and simple dialogs.
 */
import { h, placeWithin } from "./dom.js";

export class Overlays {
  constructor(root) {
    this.root = root;
    this.transient = [];
  }

  closeTransient() {
    for (const element of this.transient.splice(0)) element.remove();
  }

  #float(element, x, y) {
    this.closeTransient();
    this.root.append(element);
    placeWithin(element, x, y);
    this.transient.push(element);
    return element;
  }

  /** `items`: `[{label, action, disabled?}]` or `null` for a separator. */
  menu(items, [x, y]) {
    const element = h("div", { class: "context-menu", "data-testid": "context-menu" },
      ...items.map((item) => (item === null ? h("hr")
        : h("div", {
          class: `menu-item${item.disabled ? " disabled" : ""}`,
          onpointerdown: (event) => {
            event.preventDefault();
            if (item.disabled) return;
            this.closeTransient();
            item.action();
          },
        }, item.label))));
    this.#float(element, x, y);
  }

  /** An input (or textarea) over `rect`; Enter (Ctrl+Enter for multi-line) or blur commits. */
  editText({ rect, value, multiline = false, onCommit }) {
    const field = h(multiline ? "textarea" : "input", { class: "widget-editor", "data-testid": "widget-editor" });
    field.value = value;
    Object.assign(field.style, { width: `${Math.max(rect.w, 120)}px`, height: multiline ? `${Math.max(rect.h, 80)}px` : `${Math.max(rect.h, 22)}px` });
    let done = false;
    const finish = (commit) => {
      if (done) return;
      done = true;
      if (commit) onCommit(field.value);
      field.remove();
    };
    field.addEventListener("keydown", (event) => {
      event.stopPropagation();
      if (event.key === "Escape") finish(false);
      else if (event.key === "Enter" && (!multiline || event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        finish(true);
      }
    });
    field.addEventListener("blur", () => finish(true));
    this.root.append(field);
    placeWithin(field, rect.x, rect.y);
    field.focus();
    field.select?.();
  }

  /** A filterable list of `values` under `rect`. */
  chooseFromList({ rect, values, current, onPick }) {
    const filter = h("input", { class: "list-filter", placeholder: "Filter…" });
    const list = h("div", { class: "list-items" });
    const element = h("div", { class: "context-menu list-chooser", "data-testid": "combo-list" }, filter, list);
    const render = () => {
      const query = filter.value.toLowerCase();
      list.replaceChildren(...values.filter((value) => String(value).toLowerCase().includes(query)).map((value) => h("div", {
        class: `menu-item${value === current ? " current" : ""}`,
        onpointerdown: (event) => {
          event.preventDefault();
          this.closeTransient();
          onPick(value);
        },
      }, String(value))));
    };
    filter.addEventListener("input", render);
    filter.addEventListener("keydown", (event) => {
      event.stopPropagation();
      if (event.key === "Escape") this.closeTransient();
      if (event.key === "Enter") {
        const first = list.querySelector(".menu-item");
        if (first) {
          this.closeTransient();
          onPick(values.find((value) => String(value) === first.textContent));
        }
      }
    });
    render();
    this.#float(element, rect.x, rect.y + rect.h);
    if (values.length > 8) filter.focus();
    else filter.style.display = "none";
  }

  pickFile(accept, onFile) {
    const input = h("input", { type: "file", accept, style: { display: "none" } });
    input.addEventListener("change", () => {
      if (input.files?.[0]) onFile(input.files[0]);
      input.remove();
    });
    this.root.append(input);
    input.click();
  }

  toast(message, kind = "info", timeoutMs = 4000) {
    let stack = this.root.querySelector(".toasts");
    if (!stack) {
      stack = h("div", { class: "toasts" });
      this.root.append(stack);
    }
    const element = h("div", { class: `toast ${kind}`, "data-testid": `toast-${kind}` }, message);
    stack.append(element);
    setTimeout(() => element.remove(), timeoutMs);
  }

  /** A modal with a title, body elements and buttons `[{label, action}]`. */
  dialog(title, body, buttons = [{ label: "Close" }]) {
    const close = () => backdrop.remove();
    const backdrop = h("div", { class: "modal-backdrop", onpointerdown: (event) => event.target === backdrop && close() },
      h("div", { class: "modal", "data-testid": "dialog" },
        h("h2", {}, title),
        h("div", { class: "modal-body" }, body),
        h("div", { class: "modal-buttons" }, ...buttons.map((button) => h("button", {
          onclick: () => {
            close();
            button.action?.();
          },
        }, button.label)))));
    this.root.append(backdrop);
    return close;
  }
}
