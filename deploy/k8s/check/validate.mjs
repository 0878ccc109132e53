// Validates Prometheus Operator resources (ServiceMonitor, PodMonitor, PrometheusRule) against the
// schemas of their CRDs, as packaged by @kubernetes-models/prometheus-operator (generated from
// the operator's CRDs). Usage: node validate.mjs FILE...   Exit 1 on the first invalid document.
import { readFileSync } from "node:fs";
import yaml from "js-yaml";
import * as v1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

let bad = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(readFileSync(file, "utf8"))) {
    if (!doc) continue;
    const where = `${file}: ${doc.kind}/${doc.metadata?.name}`;
    if (doc.apiVersion !== "monitoring.coreos.com/v1" || !(doc.kind in v1)) {
      console.error(`${where}: not a monitoring.coreos.com/v1 kind this check knows`);
      bad++;
      continue;
    }
    try {
      new v1[doc.kind](doc).validate();
      checked++;
      console.log(`  ok   ${where}`);
    } catch (e) {
      console.error(`  BAD  ${where}: ${e.message}`);
      bad++;
    }
  }
}
if (checked === 0 && bad === 0) {
  console.error("no documents");
  process.exit(1);
}
process.exit(bad ? 1 : 0);
