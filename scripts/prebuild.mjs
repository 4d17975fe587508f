#!/usr/bin/env node
// Writes prebuilds/linux-x64/*.node (what the npm package ships) with prebuildify, which builds through
// scripts/node-gyp-shim.mjs (cmake-js) in a staging directory and strips the result.
import { createRequire } from 'node:module';
import { copyFileSync, mkdirSync, rmSync, readdirSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const prebuildify = require('prebuildify');
const stage = join(root, 'build', 'prebuild-stage');
rmSync(stage, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
copyFileSync(join(root, 'package.json'), join(stage, 'package.json'));
rmSync(join(root, 'prebuilds'), { recursive: true, force: true });

prebuildify(
  { cwd: stage, out: root, napi: true, strip: true, targets: [], nodeGyp: join(root, 'scripts/node-gyp-shim.mjs') },
  (err) => {
    if (err) {
      console.error('prebuild failed:', err.message || err);
      process.exit(1);
    }
    const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
    for (const f of readdirSync(dir)) console.log(`prebuild: ${join('prebuilds', `${process.platform}-${process.arch}`, f)} (${(statSync(join(dir, f)).size / 2 ** 20).toFixed(1)} MiB)`);
  },
);
