/**
 * Text chunks of a PNG file (PNG spec §11.3.4: tEXt, zTXt is skipped, iTXt uncompressed),
 * used to read back the `workflow` and `prompt` that Kiln and ComfyUI embed (comfy-compat §5).
 */

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

/** `{keyword: text}` of the PNG's tEXt and uncompressed iTXt chunks; throws when not a PNG. */
export function readPngText(buffer) {
  const bytes = new Uint8Array(buffer);
  if (!SIGNATURE.every((value, index) => bytes[index] === value)) throw new Error("not a PNG file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const latin1 = new TextDecoder("latin1");
  const utf8 = new TextDecoder("utf-8");
  const chunks = {};
  let offset = 8;
  while (offset + 8 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = latin1.decode(bytes.subarray(offset + 4, offset + 8));
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    if (type === "tEXt") {
      const separator = data.indexOf(0);
      if (separator > 0) chunks[latin1.decode(data.subarray(0, separator))] = latin1.decode(data.subarray(separator + 1));
    } else if (type === "iTXt") {
      const keywordEnd = data.indexOf(0);
      const compressed = data[keywordEnd + 1];
      const languageEnd = data.indexOf(0, keywordEnd + 3);
      const translatedEnd = data.indexOf(0, languageEnd + 1);
      if (keywordEnd > 0 && !compressed && translatedEnd > 0) {
        chunks[latin1.decode(data.subarray(0, keywordEnd))] = utf8.decode(data.subarray(translatedEnd + 1));
      }
    } else if (type === "IEND") break;
    offset += 12 + length;
  }
  return chunks;
}

/**
 * What a PNG carries: `{workflow}` (UI format) when the `workflow` chunk parses, else
 * `{prompt}` (API format), else `{}`.
 */
export function workflowFromPng(buffer) {
  const chunks = readPngText(buffer);
  for (const [key, field] of [["workflow", "workflow"], ["prompt", "prompt"]]) {
    if (!chunks[key]) continue;
    try {
      return { [field]: JSON.parse(chunks[key]) };
    } catch {
      /* a damaged chunk: try the next one */
    }
  }
  return {};
}
