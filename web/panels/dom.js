/** A tiny element builder for the DOM panels: `h("button", {class: "x", onclick}, "text")`. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else if (key === "style" && typeof value === "object") Object.assign(element.style, value);
    else if (key in element && typeof value !== "string") element[key] = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Keep a floating element inside the window. */
export function placeWithin(element, x, y) {
  element.style.left = `${x}px`;
  element.style.top = `${y}px`;
  const rect = element.getBoundingClientRect();
  if (rect.right > window.innerWidth) element.style.left = `${Math.max(0, window.innerWidth - rect.width - 4)}px`;
  if (rect.bottom > window.innerHeight) element.style.top = `${Math.max(0, window.innerHeight - rect.height - 4)}px`;
}
