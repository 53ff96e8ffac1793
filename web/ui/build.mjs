// Bundles the UI into dist/: index.html, assets/app.js, assets/app.css (uPlot's CSS included),
// the login page (login.html, assets/login.js, assets/login.css) and assets/favicon.svg.
// Type-checking is a separate step (`tsc --noEmit`, run first by `npm run build`).
// `node build.mjs --watch` rebuilds on change, for development.
import * as esbuild from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

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
}
