/** Text measuring helpers for canvas drawing. */

/** `text` cut with an ellipsis to fit `width` pixels. */
export function fitText(ctx, text, width) {
  const value = String(text);
  if (ctx.measureText(value).width <= width) return value;
  let low = 0;
  let high = value.length;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if (ctx.measureText(value.slice(0, mid) + "…").width <= width) low = mid;
    else high = mid - 1;
  }
  return value.slice(0, low) + "…";
}

export function wrapText(ctx, text, width) {
  const lines = [];
  for (const paragraph of String(text).split("\n")) {
    let line = "";
    for (const word of paragraph.split(" ")) {
      const candidate = line ? `${line} ${word}` : word;
      if (ctx.measureText(candidate).width > width - 12 && line) {
        lines.push(line);
        line = word;
      } else line = candidate;
    }
    lines.push(line);
  }
  return lines;
}
