/**
 * Pan and zoom, in litegraph's `DragAndScale` convention that workflows save as
 * `extra.ds = {scale, offset}`: screen = (graph + offset) · scale.
 */
export const MIN_SCALE = 0.05;
export const MAX_SCALE = 4;

export class Camera {
  constructor(scale = 1, offset = [0, 0]) {
    this.scale = scale;
    this.offset = [...offset];
  }

  graphToScreen([x, y]) {
    return [(x + this.offset[0]) * this.scale, (y + this.offset[1]) * this.scale];
  }

  screenToGraph([x, y]) {
    return [x / this.scale - this.offset[0], y / this.scale - this.offset[1]];
  }

  panBy(dxScreen, dyScreen) {
    this.offset[0] += dxScreen / this.scale;
    this.offset[1] += dyScreen / this.scale;
  }

  /** Zoom by `factor` keeping the graph point under screen point `anchor` fixed. */
  zoomAt(factor, anchor) {
    const before = this.screenToGraph(anchor);
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    const after = this.screenToGraph(anchor);
    this.offset[0] += after[0] - before[0];
    this.offset[1] += after[1] - before[1];
  }

  /** Show the graph rectangle `[x, y, w, h]` inside a viewport of `width`×`height` pixels. */
  fit([x, y, w, h], width, height, margin = 40) {
    if (w <= 0 || h <= 0) return;
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, Math.min((width - 2 * margin) / w, (height - 2 * margin) / h, 1)));
    this.offset = [(width / this.scale - w) / 2 - x, (height / this.scale - h) / 2 - y];
  }

  /** The visible graph rectangle `[x, y, w, h]` of a `width`×`height` viewport. */
  visibleRect(width, height) {
    const [x, y] = this.screenToGraph([0, 0]);
    return [x, y, width / this.scale, height / this.scale];
  }

  toDs() {
    return { scale: this.scale, offset: [...this.offset] };
  }
}

export function rectsOverlap(a, b) {
  return a[0] < b[0] + b[2] && a[0] + a[2] > b[0] && a[1] < b[1] + b[3] && a[1] + a[3] > b[1];
}

export function rectContains(outer, inner) {
  return inner[0] >= outer[0] && inner[1] >= outer[1] && inner[0] + inner[2] <= outer[0] + outer[2] && inner[1] + inner[3] <= outer[1] + outer[3];
}
