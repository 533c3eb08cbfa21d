// Builds public/vad/: the bridge bundled into one ES module, and beside it the files the library
// loads at run time from the same folder: the Silero model, the audio worklet, and
// onnxruntime-web's single-threaded-capable WebAssembly with its loader.
import * as esbuild from "esbuild";
import * as fs from "node:fs";
import * as path from "node:path";

const out = path.resolve("../public/vad");
const files = [
  "node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx",
  "node_modules/@ricky0123/vad-web/dist/vad.worklet.bundle.min.js",
  "node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm",
  "node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.mjs",
];

fs.mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: ["src/vad.js"],
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2020",
  logLevel: "warning",
  outfile: path.join(out, "vad-bridge.js"),
});
for (const f of files) {
  // Written under a temporary name and renamed, so a running server never serves half a file.
  const dest = path.join(out, path.basename(f));
  fs.copyFileSync(f, `${dest}.tmp`);
  fs.renameSync(`${dest}.tmp`, dest);
}
