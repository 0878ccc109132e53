// Reads the suite's results (conformance server -o DIR writes DIR/<scenario>/checks.json) and
// prints one line per scenario. Exit 1 when a scenario has a FAILURE, or when one named in
// EXPECTED (comma-separated: scenarios outside this server's scope) no longer fails (stale).
// WARNINGs are printed; with STRICT_WARNINGS=1 they fail too.
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";

const [dir] = process.argv.slice(2);
const expected = new Set((process.env.EXPECTED ?? "").split(",").filter(Boolean));
const strict = process.env.STRICT_WARNINGS === "1";
const files = [];
const walk = (d) => {
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name === "checks.json") files.push(p);
  }
};
if (existsSync(dir)) walk(dir);
if (files.length === 0) {
  console.error(`verdict: no checks.json under ${dir}`);
  process.exit(1);
}
let bad = 0;
for (const f of files.sort()) {
  // The suite names each folder `server-<scenario>-<ISO timestamp>`.
  const folder = f.slice(dir.length + 1).split("/").slice(0, -1).join("/");
  const scenario = folder.replace(/^server-/, "").replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, "");
  const checks = JSON.parse(readFileSync(f, "utf8"));
  const count = (s) => checks.filter((c) => c.status === s).length;
  const failures = checks.filter((c) => c.status === "FAILURE");
  const warnings = checks.filter((c) => c.status === "WARNING");
  let verdict = "pass";
  if (expected.has(scenario)) {
    verdict = failures.length ? "expected failure" : "STALE: passes now, remove it from EXPECTED";
    if (!failures.length) bad++;
  } else if (failures.length || (strict && warnings.length)) {
    verdict = "FAIL";
    bad++;
  }
  console.log(`${verdict.padEnd(16)} ${scenario}: ${count("SUCCESS")} ok, ${failures.length} failed, ${warnings.length} warnings`);
  for (const c of [...failures, ...warnings]) {
    console.log(`    ${c.status} ${c.id}: ${c.errorMessage ?? c.details?.message ?? ""}`);
  }
}
console.log(`verdict: ${files.length} scenarios, ${bad} not as expected`);
process.exit(bad ? 1 : 0);
