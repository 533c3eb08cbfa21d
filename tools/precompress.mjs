// Writes a brotli (.br) and a gzip (.gz) twin beside every WebAssembly, script, style sheet and
// SVG file of the built site, at the best levels, for the server to send to browsers that take
// them (src/server/site.rs). Run by `make build` after cargo-leptos.
//
//   node tools/precompress.mjs SITE_ROOT            make the missing and stale twins
//   node tools/precompress.mjs --remove SITE_ROOT   remove every twin (`make dev`: watch rewrites
//                                                   files under the same name, which would leave
//                                                   their twins stale)
//
// A twin newer than its file is up to date, so a second run compresses nothing; a twin whose
// file is gone is removed; a twin that would not be smaller is not kept. Twins are written to a
// temporary name and renamed, so a running server never serves half a file.
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import * as zlib from "node:zlib";

const COMPRESSIBLE = /\.(wasm|js|mjs|css|svg)$/;
const TWINS = [".br", ".gz"];

const args = process.argv.slice(2);
const remove = args[0] === "--remove";
const root = remove ? args[1] : args[0];
if (!root) {
  console.error("usage: node tools/precompress.mjs [--remove] SITE_ROOT");
  process.exit(2);
}
if (!fs.existsSync(root)) {
  // Nothing built yet: nothing to compress or remove.
  process.exit(0);
}

const brotli = promisify(zlib.brotliCompress);
const gzip = promisify(zlib.gzip);

function encode(twin, bytes, file) {
  if (twin === ".gz") {
    return gzip(bytes, { level: zlib.constants.Z_BEST_COMPRESSION, memLevel: 9 });
  }
  const text = !file.endsWith(".wasm");
  return brotli(bytes, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY,
      [zlib.constants.BROTLI_PARAM_LGWIN]: zlib.constants.BROTLI_MAX_WINDOW_BITS,
      [zlib.constants.BROTLI_PARAM_MODE]: text ? zlib.constants.BROTLI_MODE_TEXT : zlib.constants.BROTLI_MODE_GENERIC,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  });
}

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return walk(p);
    return e.isFile() ? [p] : [];
  });
}

const files = walk(root);
const twinOf = (f) => TWINS.find((t) => f.endsWith(t) && COMPRESSIBLE.test(f.slice(0, -t.length)));

let removed = 0;
for (const f of files) {
  const twin = twinOf(f);
  if (twin && (remove || !fs.existsSync(f.slice(0, -twin.length)))) {
    fs.rmSync(f, { force: true });
    removed++;
  }
}
if (remove) {
  if (removed) console.log(`precompress: removed ${removed} compressed twins from ${root}`);
  process.exit(0);
}

const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
const jobs = [];
const totals = { files: 0, raw: 0, ".br": 0, ".gz": 0, fresh: 0 };
for (const file of files.filter((f) => COMPRESSIBLE.test(f))) {
  const stat = fs.statSync(file);
  totals.files++;
  totals.raw += stat.size;
  for (const twin of TWINS) {
    const out = file + twin;
    const have = fs.existsSync(out) && fs.statSync(out);
    if (have && have.mtimeMs >= stat.mtimeMs) {
      totals[twin] += have.size;
      totals.fresh++;
      continue;
    }
    jobs.push(
      (async () => {
        const packed = await encode(twin, fs.readFileSync(file), file);
        if (packed.length >= stat.size) {
          fs.rmSync(out, { force: true });
          totals[twin] += stat.size;
          return;
        }
        const tmp = `${out}.tmp`;
        fs.writeFileSync(tmp, packed);
        fs.renameSync(tmp, out);
        totals[twin] += packed.length;
      })(),
    );
  }
}
await Promise.all(jobs);
console.log(
  `precompress: ${totals.files} files, ${kb(totals.raw)} -> brotli ${kb(totals[".br"])}, gzip ${kb(totals[".gz"])}` +
    ` (${jobs.length} twins written, ${totals.fresh} up to date, ${removed} stale removed)`,
);
