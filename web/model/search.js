/**
 * Fuzzy node search over name, display name and category: every query character must
 * appear in order; contiguous runs, word starts and exact prefixes score higher.
 */

/**
 * Score of `query` against `text` (higher is better), or -Infinity when it does not match.
 * Words of the query match separately, so "empty image" finds "EmptyImage".
 */
export function fuzzyScore(query, text) {
  const terms = query.trim().split(/\s+/).filter(Boolean);
  if (terms.length > 1) {
    const whole = termScore(query.trim(), text);
    const parts = terms.reduce((sum, term) => sum + termScore(term, text), 0);
    return Math.max(whole, parts);
  }
  return termScore(terms[0] ?? "", text);
}

function termScore(query, text) {
  const needle = query.toLowerCase();
  const haystack = String(text).toLowerCase();
  if (!needle) return 0;
  const exactAt = haystack.indexOf(needle);
  if (exactAt >= 0) return 1000 - exactAt * 2 - (haystack.length - needle.length) * 0.5 + (exactAt === 0 ? 200 : 0);
  let score = 0;
  let cursor = 0;
  let run = 0;
  for (const char of needle) {
    const found = haystack.indexOf(char, cursor);
    if (found < 0) return -Infinity;
    run = found === cursor ? run + 1 : 0;
    const wordStart = found === 0 || /[\s_/\-.]/.test(haystack[found - 1]) || (text[found] >= "A" && text[found] <= "Z");
    score += 1 + run * 3 + (wordStart ? 5 : 0) - (found - cursor) * 0.2;
    cursor = found + 1;
  }
  return score;
}

/**
 * Defs matching `query`, best first.
 * @param {Iterable<object>} defs parsed node defs
 * @param {{inputType?: string, outputType?: string, limit?: number, typesCompatible?: Function}} filter
 *   only defs with an input accepting `inputType` / an output giving `outputType`
 */
export function searchNodes(defs, query, { inputType, outputType, limit = 50, typesCompatible } = {}) {
  const results = [];
  for (const def of defs) {
    if (def.deprecated) continue;
    if (inputType && !def.inputs.some((input) => typesCompatible(inputType, input.type))) continue;
    if (outputType && !def.outputs.some((output) => typesCompatible(output.type, outputType))) continue;
    const score = Math.max(fuzzyScore(query, def.displayName) + 5, fuzzyScore(query, def.name), fuzzyScore(query, def.category) - 50);
    if (score > -Infinity) results.push({ def, score });
  }
  results.sort((a, b) => b.score - a.score || a.def.displayName.localeCompare(b.def.displayName));
  return results.slice(0, limit).map((result) => result.def);
}
