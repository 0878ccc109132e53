// Helpers shared by the e2e tests.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

/** The repository's src/page directory. */
export const PAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src/page");

/** The CSP exactly as the Rust constant in `src/page/mod.rs` spells it (pieces joined across `\` newlines). */
export function readCsp(modRs = readFileSync(path.join(PAGE_DIR, "mod.rs"), "utf8")) {
  const m = modRs.match(/pub const CSP: &str = "((?:[^"\\]|\\[\s\S])*)";/);
  if (!m) throw new Error("CSP constant not found in src/page/mod.rs");
  return m[1].replace(/\\\n\s*/g, "");
}
