// Multi-process tests run fixtures with plain node, which load the compiled package from dist/:
// rebuild the TypeScript half when a source is newer (the addon is built by `npm test`'s pretest).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const root = join(__dirname, '..', '..');

export function ensureDist(): void {
  const r = spawnSync(process.execPath, [join(root, 'scripts/build.mjs'), '--ts', '--if-needed'], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building dist/ failed:\n${r.stdout}\n${r.stderr}`);
}
