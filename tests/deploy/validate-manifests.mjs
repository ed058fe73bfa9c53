// Offline schema check of Kubernetes manifests: node validate-manifests.mjs <dir>
//
// Every document of <dir>/*.yaml is validated against the OpenAPI schema of its apiVersion
// and kind (the npm package kubernetes-models); an unknown kind, a schema error or a field
// the schema does not have (what `kubectl apply`'s strict field validation refuses) is an
// error. kustomization.yaml is not a resource: it must list files that exist, and every other
// *.yaml except *.example.yaml. Prints {"documents": [...], "errors": [...]} as JSON on
// stdout (documents as parsed, for further checks); exit status 1 when there are errors.
//
// tests/integration/test_deploy.py copies this file and package.json into build/deploy-node
// and runs `npm install` there once, so nothing is installed into the repository.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
const modelsDir = path.join(here, "node_modules", "kubernetes-models");
const dir = process.argv[2];
if (!dir) {
  console.error("usage: node validate-manifests.mjs <manifest-dir>");
  process.exit(2);
}

const errors = [];
const documents = [];
const fail = (where, msg) => errors.push(`${where}: ${msg}`);

// --- field names from the package's TypeScript declarations --------------------------------
// Each model file declares `export interface IName { "field"?: Type; ... }`; a Type is a
// primitive, Array<T>, { [key: string]: T; } or an interface imported from another file.

const shapes = new Map(); // .d.ts path -> {fields: Map(name -> type)} or null (free-form)

function resolveImport(fromFile, spec) {
  const base = spec.startsWith(".")
    ? path.resolve(path.dirname(fromFile), spec)
    : path.join(here, "node_modules", spec);
  return fs.existsSync(base + ".d.ts") ? base + ".d.ts" : null;
}

function splitFields(body) {
  // "name"?: Type;  with Type possibly spanning lines ({ [key: string]: T; }, Array<...>)
  const out = [];
  let i = 0;
  const re = /"([^"]+)"\??:\s*/y;
  while (i < body.length) {
    re.lastIndex = i;
    const m = re.exec(body);
    if (!m) {
      i++;
      continue;
    }
    let j = re.lastIndex;
    let depth = 0;
    while (j < body.length && !(depth === 0 && body[j] === ";")) {
      if ("{<(".includes(body[j])) depth++;
      if ("}>)".includes(body[j])) depth--;
      j++;
    }
    out.push([m[1], body.slice(re.lastIndex, j).trim()]);
    i = j + 1;
  }
  return out;
}

function parseType(text, file, imports) {
  const arr = /^Array<(.*)>$/s.exec(text);
  if (arr) return { array: parseType(arr[1].trim(), file, imports) };
  const map = /^\{\s*\[key: string\]:\s*(.*?);?\s*\}$/s.exec(text);
  if (map) return { map: parseType(map[1].trim(), file, imports) };
  if (imports.has(text)) return { ref: imports.get(text) };
  return {}; // a primitive, a union of literals, or something not checked here
}

function shapeOf(file) {
  if (!file) return null;
  if (shapes.has(file)) return shapes.get(file);
  shapes.set(file, null); // recursive types (JSONSchemaProps) end here
  const text = fs.readFileSync(file, "utf8").replace(/\/\*\*[\s\S]*?\*\//g, "");
  const imports = new Map();
  for (const m of text.matchAll(/import \{([^}]*)\} from "([^"]+)";/g)) {
    const target = resolveImport(file, m[2]);
    for (const name of m[1].split(",").map((s) => s.trim()).filter(Boolean))
      if (target) imports.set(name, target);
  }
  const iface = /export interface \w+(?: extends [\w, ]+)? \{\n([\s\S]*?)\n\}/.exec(text);
  if (!iface) return null; // a type alias (Quantity, IntOrString, Time): a value, no fields
  const fields = new Map();
  for (const [name, type] of splitFields(iface[1]))
    fields.set(name, parseType(type, file, imports));
  const shape = fields.size ? { fields } : null; // no declared field: free-form
  shapes.set(file, shape);
  return shape;
}

function checkFields(value, type, where) {
  if (value === null || value === undefined || !type) return;
  if (type.array) {
    if (Array.isArray(value)) value.forEach((v, i) => checkFields(v, type.array, `${where}[${i}]`));
    return;
  }
  if (type.map) {
    if (typeof value === "object" && !Array.isArray(value))
      for (const [k, v] of Object.entries(value)) checkFields(v, type.map, `${where}.${k}`);
    return;
  }
  if (!type.ref || typeof value !== "object" || Array.isArray(value)) return;
  const shape = shapeOf(type.ref);
  if (!shape) return;
  for (const [k, v] of Object.entries(value)) {
    if (!shape.fields.has(k)) fail(where || "(top)", `unknown field "${k}"`);
    else checkFields(v, shape.fields.get(k), where ? `${where}.${k}` : k);
  }
}

// --- the documents ---------------------------------------------------------------------------

async function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || !/^[a-z0-9.-]+(\/[a-z0-9]+)?$/.test(apiVersion))
    return null;
  let mod;
  try {
    mod = await import(`kubernetes-models/${apiVersion}`);
  } catch {
    return null;
  }
  const cls = mod[kind];
  if (typeof cls !== "function" || cls.kind !== kind || cls.apiVersion !== apiVersion) return null;
  const dts = path.join(modelsDir, ...apiVersion.split("/"), `${kind}.d.ts`);
  return { cls, dts: fs.existsSync(dts) ? dts : null };
}

function checkKustomization(file, doc, files) {
  if (doc?.kind !== "Kustomization") return fail(file, "expected kind Kustomization");
  const listed = new Set(doc.resources ?? []);
  for (const r of listed)
    if (!fs.existsSync(path.join(dir, r))) fail(file, `resource ${r} does not exist`);
  for (const f of files)
    if (f !== "kustomization.yaml" && !f.endsWith(".example.yaml") && !listed.has(f))
      fail(file, `${f} is not listed in resources (name it *.example.yaml if on purpose)`);
}

const files = fs.readdirSync(dir).filter((f) => f.endsWith(".yaml")).sort();
if (!files.length) fail(dir, "no *.yaml files");
for (const file of files) {
  const text = fs.readFileSync(path.join(dir, file), "utf8");
  // YAML 1.1, as kubectl reads it (0440 is octal, yes/no are booleans).
  const docs = YAML.parseAllDocuments(text, { version: "1.1" });
  for (const [i, d] of docs.entries()) {
    const where = `${file}#${i + 1}`;
    if (d.errors.length) {
      fail(where, d.errors.map((e) => e.message).join("; "));
      continue;
    }
    const doc = d.toJS();
    if (doc === null || doc === undefined) continue; // an empty document (comments only)
    if (file === "kustomization.yaml") {
      checkKustomization(file, doc, files);
      continue;
    }
    const name = `${doc.kind ?? "?"}/${doc.metadata?.name ?? "?"}`;
    documents.push({ file, kind: doc.kind, name: doc.metadata?.name, doc });
    const model = await modelFor(doc.apiVersion, doc.kind);
    if (!model) {
      fail(`${where} ${name}`, `unknown apiVersion/kind ${doc.apiVersion}/${doc.kind}`);
      continue;
    }
    try {
      new model.cls(doc).validate();
    } catch (e) {
      fail(`${where} ${name}`, String(e.message ?? e));
    }
    if (model.dts) {
      const before = errors.length;
      checkFields(doc, { ref: model.dts }, "");
      for (let k = before; k < errors.length; k++) errors[k] = `${where} ${name} ${errors[k]}`;
    }
  }
}

process.stdout.write(JSON.stringify({ documents, errors }) + "\n");
for (const e of errors) console.error(`manifest: ${e}`);
process.exit(errors.length ? 1 : 0);
