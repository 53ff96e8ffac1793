// Bundles the UI into dist/: index.html, assets/app.js, assets/app.css (uPlot's CSS included),
// the login page (login.html, assets/login.js, assets/login.css) and assets/favicon.svg.
// Type-checking is a separate step (`tsc --noEmit`, run first by `npm run build`).
// `node build.mjs --watch` rebuilds on change, for development.
//
// Each text file of dist/ (html, js, css, svg) over 512 bytes is also written precompressed
// beside it, `NAME.br` (brotli, quality 11) and `NAME.gz` (gzip, level 9), when that is smaller:
// the server (web/src/assets.rs) sends one of them to a browser that accepts it, so nothing is
// compressed per request. `--watch` leaves them out (the server then sends the plain files).
import * as esbuild from "esbuild";
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants as zlib, gzipSync } from "node:zlib";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");
const watch = process.argv.includes("--watch");

await rm(dist, { recursive: true, force: true });
await mkdir(join(dist, "assets"), { recursive: true });
await copyFile(join(root, "index.html"), join(dist, "index.html"));
await copyFile(join(root, "login.html"), join(dist, "login.html"));
await copyFile(join(root, "favicon.svg"), join(dist, "assets", "favicon.svg"));

/** @type {import("esbuild").BuildOptions} */
const options = {
  entryPoints: { app: join(root, "src/main.ts"), login: join(root, "src/login.ts") },
  outdir: join(dist, "assets"),
  bundle: true,
  format: "iife",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  minify: !watch,
  sourcemap: watch ? "inline" : false,
  legalComments: "eof",
  logLevel: "info",
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
  await precompress(dist);
}

/** Writes NAME.br and NAME.gz beside each text file of `dir` (recursively) worth it. */
async function precompress(dir) {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      await precompress(path);
      continue;
    }
    if (!/\.(html|js|css|svg)$/.test(e.name)) continue;
    const data = await readFile(path);
    if (data.length <= 512) continue;
    const br = brotliCompressSync(data, {
      params: {
        [zlib.BROTLI_PARAM_QUALITY]: 11,
        [zlib.BROTLI_PARAM_MODE]: zlib.BROTLI_MODE_TEXT,
        [zlib.BROTLI_PARAM_SIZE_HINT]: data.length,
      },
    });
    const gz = gzipSync(data, { level: 9 });
    if (br.length < data.length) await writeFile(`${path}.br`, br);
    if (gz.length < data.length) await writeFile(`${path}.gz`, gz);
  }
}
