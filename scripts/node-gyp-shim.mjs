#!/usr/bin/env node
// prebuildify drives node-gyp; this stands in for node-gyp and drives our cmake-js build instead.
// prebuildify runs it as `node-gyp rebuild --target=... --release` with the staging directory as cwd
// and then takes the .node it finds in <cwd>/build/Release.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const r = spawnSync(process.execPath, [join(root, 'scripts/build.mjs'), '--native'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status || 1);
const out = join(process.cwd(), 'build', 'Release');
mkdirSync(out, { recursive: true });
copyFileSync(join(root, 'build/Release/deepseek_kernels.node'), join(out, 'deepseek_kernels.node'));
