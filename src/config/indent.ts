/**
 * Misindented keys, explained in one line. The YAML parser reports what it could not parse, often
 * a line earlier than the key that is wrong and twice (`Nested mappings are not allowed in compact
 * mappings`, `Implicit keys need to be on a single line`); the user needs the key and its line.
 *
 * A scan of the block-style key lines (`key:`, `- key:`) against the columns of the keys above:
 *   - deeper than the previous key, which already has a value  → "indented deeper than …";
 *   - at the column of a list item's `-` (and not an item itself) → "indent it to … to belong to it";
 *   - between two columns in use above                          → "matches no key above".
 * Lines inside block scalars (`|`, `>`), flow collections and comments are skipped. Pure: text in,
 * the first finding out (undefined when the keys line up and the error is something else).
 */

export interface IndentProblem { line: number; message: string }

interface Level { col: number; key: string; line: number; dash: boolean; hasValue: boolean }

const KEY_LINE = /^( *)((?:- +)?)("[^"]*"|'[^']*'|[^\s#'"{[\]},&*!|>%@`-][^:#]*?|-[^\s:#][^:#]*?)\s*:(?:\s+(.*?))?\s*$/;
const DASH_ONLY = /^( *)- *$/;

export function findMisindentedKey(text: string): IndentProblem | undefined {
  const lines = text.split(/\r?\n/);
  const stack: Level[] = [];
  let blockScalarIndent = -1;
  let prev: Level | undefined;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    const indent = raw.length - raw.trimStart().length;
    const body = raw.trim();
    if (body === '' || body.startsWith('#')) continue;
    if (blockScalarIndent >= 0) {
      if (indent > blockScalarIndent) continue;
      blockScalarIndent = -1;
    }
    if (body === '---' || body === '...') { stack.length = 0; prev = undefined; continue; }
    const m = KEY_LINE.exec(raw.replace(/\s+#.*$/, ''));
    if (!m) { if (!DASH_ONLY.test(raw)) continue; }
    const dashLen = m ? m[2].length : raw.trimStart().length;
    const col = indent + dashLen;
    const key = m ? m[3].replace(/^["']|["']$/g, '') : '-';
    const value = m?.[4] ?? '';
    const lineNo = i + 1;
    const here: Level = { col, key, line: lineNo, dash: dashLen > 0, hasValue: value !== '' && !/^[|>][-+0-9]*$/.test(value) && !/^&\S+$/.test(value) };
    if (m && /^[|>][-+0-9]*$/.test(value)) blockScalarIndent = indent + (dashLen > 0 ? dashLen : 0);
    const q = (s: string) => JSON.stringify(s);
    if (prev && col > prev.col && !here.dash && prev.hasValue) {
      return { line: lineNo, message: `key ${q(key)} is indented deeper than ${q(prev.key)} (line ${prev.line}), which already has a value: align it with ${q(prev.key)} (column ${prev.col + 1})` };
    }
    // Levels: a list item is two, its dash and the key after it; a later key at a column replaces
    // the one before it.
    let popped: Level | undefined;
    while (stack.length && stack[stack.length - 1].col > indent) popped = stack.pop();
    let top = stack[stack.length - 1];
    if (!here.dash && top?.dash && top.col === indent) {
      const below = stack[stack.length - 2];
      if (below && below.col === indent && !below.dash) { stack.pop(); top = below; } // `key:` then `- …` at its column: we are its sibling
      else return { line: lineNo, message: `key ${q(key)} is at the column of the "-" of the list item above (line ${top.line}): indent it to column ${(popped?.col ?? indent + 2) + 1}` + (popped ? `, like ${q(popped.key)},` : '') + ' to make it part of that item' };
    }
    if (popped && (!top || top.col < indent)) {
      return { line: lineNo, message: `key ${q(key)} (column ${indent + 1}) matches no key above: align it with ${q(popped.key)} (line ${popped.line}, column ${popped.col + 1})` + (top && !top.dash ? ` or with ${q(top.key)} (column ${top.col + 1})` : '') };
    }
    if (here.dash) {
      if (top?.dash && top.col === indent) stack.pop(); // the next item of the same list
      stack.push({ ...here, col: indent, key: '-' });
      if (m) stack.push({ ...here, dash: false });
    } else {
      if (top && top.col === indent) stack.pop();
      stack.push(here);
    }
    prev = m ? { ...here, dash: false } : undefined;
  }
  return undefined;
}
