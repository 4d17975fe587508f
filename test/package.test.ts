// The published package: `npm pack`, installed into an empty directory with no compiler or CUDA
// toolkit on PATH, loads through both require and import and lists devices, building nothing.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, symlinkSync, writeFileSync, rmSync, existsSync, realpathSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { explainLoadFailure } from '../bindings/loader';

const root = join(__dirname, '..');

describe('loader errors say what failed and what to do', () => {
  it('names a missing glibc version', () => {
    const e = explainLoadFailure(new Error("/lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not found"), root);
    expect(e.message).toMatch(/needs GLIBC_2\.38/);
    expect(e.message).toMatch(/npm run build/);
  });
  it('explains a missing binary', () => {
    const e = explainLoadFailure(new Error('No native build was found for platform=linux arch=x64'), '/nonexistent');
    expect(e.message).toMatch(/Neither a prebuilt binary nor a local build was found/);
  });
  it('explains a driver library problem without blaming the addon', () => {
    const e = explainLoadFailure(new Error('libcuda.so.1: cannot open shared object file'), root);
    expect(e.message).toMatch(/NVIDIA driver/);
  });
});

describe('npm pack', () => {
  // Packs this checkout and its runtime dependencies and installs them: 20 s on the 2-core CI machine, 84-120 s on the
  // GPU machine while the CUDA suites run beside it (it failed there once at the default 120 s), so it gets 300 s.
  it('installs into an empty directory and loads without building', { timeout: 300_000 }, () => {
    const work = mkdtempSync(join(tmpdir(), 'dsk-pack-'));
    try {
      execFileSync(process.execPath, [join(root, 'scripts/prebuild.mjs')], { cwd: root, stdio: 'pipe' });
      const packed = JSON.parse(execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8' }));
      const files: string[] = packed[0].files.map((f: { path: string }) => f.path);
      expect(files).toContain('prebuilds/linux-x64/deepseek-kernels.node');
      expect(files).toContain('dist/lib/index.js');
      expect(files).toContain('dist/lib/index.mjs');
      expect(files.some((f) => f.startsWith('native/'))).toBe(false);
      // PATH with node and npm only: no cc, c++, cmake, nvcc, make.
      const bin = join(work, 'bin');
      mkdirSync(bin);
      symlinkSync(process.execPath, join(bin, 'node'));
      const npmCli = process.env.npm_execpath?.endsWith('.js')
        ? process.env.npm_execpath
        : realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
      const app = join(work, 'app');
      mkdirSync(app);
      writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
      // The runtime dependencies come from this checkout's node_modules, packed, so the install needs no
      // registry and no cache (the GPU machine has no network): what is tested is that nothing builds.
      const deps = join(work, 'deps');
      mkdirSync(deps);
      const depDirs = execFileSync(process.execPath, [npmCli, 'ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8' })
        .split('\n').map((l) => l.trim()).filter((l) => l && l !== root);
      for (const d of depDirs) execFileSync(process.execPath, [npmCli, 'pack', d, '--ignore-scripts', '--pack-destination', deps], { cwd: root, stdio: 'pipe' });
      const env = { ...process.env, PATH: bin };
      const tarballs = [join(work, packed[0].filename), ...readdirSync(deps).map((f) => join(deps, f))];
      execFileSync(process.execPath, [npmCli, 'install', '--offline', '--cache', join(work, 'cache'), '--no-audit', '--no-fund', ...tarballs], { cwd: app, env, stdio: 'pipe' });
      expect(existsSync(join(app, 'node_modules/deepseek-kernels/build'))).toBe(false);
      const cjs = execFileSync(process.execPath, ['-e', "const d = require('deepseek-kernels'); console.log(JSON.stringify(d.devices().map(x => x.id)))"], { cwd: app, env, encoding: 'utf8' });
      expect(JSON.parse(cjs)[0]).toBe('cpu');
      const esm = execFileSync(process.execPath, ['--input-type=module', '-e', "import { tensor, devices } from 'deepseek-kernels'; const a = await tensor([1.5, 2]).cast('bf16').toArray(); console.log(devices()[0].id, Array.from(a).join(','))"], { cwd: app, env, encoding: 'utf8' });
      expect(esm.trim()).toBe('cpu 1.5,2');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
