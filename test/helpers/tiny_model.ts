// Generated checkpoints for tests, written once per test run and per (preset, options) and shared by
// the test files (the directory name carries a hash of the code that writes them, so a change to the
// writer never reuses a stale model). Written to a temporary name and renamed, so parallel test files
// never see half a checkpoint.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeModel, type MakeModelOptions } from '../../lib/model/make_model';

const SOURCES = ['make_model.ts', 'init.ts', 'layout.ts', 'presets.ts', 'safetensors.ts'].map((f) => join(__dirname, '../../lib/model', f));

export async function testModel(o: Omit<MakeModelOptions, 'out'>): Promise<string> {
  const h = createHash('sha256');
  for (const f of SOURCES) h.update(readFileSync(f));
  h.update(JSON.stringify(o));
  const dir = join(tmpdir(), `dsk-test-model-${o.preset}-${h.digest('hex').slice(0, 16)}`);
  if (existsSync(join(dir, 'config.json'))) return dir;
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  await makeModel({ ...o, out: tmp });
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another test file got there first
  }
  return dir;
}
