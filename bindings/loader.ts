// Loads the native addon: prebuilds/<platform>-<arch>/ (shipped in the npm package) or build/Release
// (built from source), through node-gyp-build. When it cannot load, the error says what failed and what
// to do about it, instead of a bare dlopen message.
import { existsSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import type { Native } from './native';

function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      try {
        if (JSON.parse(readFileSync(p, 'utf8')).name === 'deepseek-kernels') return dir;
      } catch {
        /* keep looking */
      }
    }
    dir = dirname(dir);
  }
  throw new Error('deepseek-kernels: cannot find the package root from ' + __dirname);
}

function runtimeGlibc(): string | undefined {
  try {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    return report?.header?.glibcVersionRuntime;
  } catch {
    return undefined;
  }
}

export function explainLoadFailure(err: unknown, root: string): Error {
  const cause = err instanceof Error ? err.message : String(err);
  const platform = `${process.platform}-${process.arch}`;
  const lines = [`deepseek-kernels: could not load the native addon on ${platform} (Node ${process.version}).`, `  cause: ${cause}`];
  const hasPrebuild = existsSync(join(root, 'prebuilds', platform));
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    lines.push(`  There is no prebuilt binary for ${platform}; only linux-x64 is published.`);
    lines.push('  Build from source in the package directory: npm run build (needs cmake, a C++17 compiler, and nvcc for CUDA).');
  } else if (/GLIBC_[0-9.]+/.test(cause)) {
    const need = cause.match(/GLIBC_[0-9.]+/)?.[0];
    lines.push(`  The prebuilt binary needs ${need}; this system has glibc ${runtimeGlibc() ?? '(unknown)'}.`);
    lines.push('  Upgrade the OS (glibc), or build from source: npm run build.');
  } else if (/GLIBCXX_|CXXABI_/.test(cause)) {
    lines.push('  The system libstdc++ is older than the one the binary was built with; install a newer libstdc++6 or build from source.');
  } else if (/libcuda|libnvidia/.test(cause)) {
    lines.push('  The NVIDIA driver library could not be loaded. The addon itself needs no driver (it reports only `cpu`');
    lines.push('  without one); check LD_LIBRARY_PATH and the driver installation (nvidia-smi).');
  } else if (/No native build was found|Cannot find module/.test(cause)) {
    lines.push(hasPrebuild ? '  The prebuilt binary is present but was not selected.' : '  Neither a prebuilt binary nor a local build was found.');
    lines.push('  Build from source: npm run build (cmake, a C++17 compiler; nvcc for CUDA kernels).');
  } else if (/invalid ELF|wrong ELF class|architecture/.test(cause)) {
    lines.push('  The binary was built for another architecture; build from source: npm run build.');
  }
  const e = new Error(lines.join('\n'));
  (e as Error & { cause?: unknown }).cause = err;
  return e;
}

let cached: Native | undefined;

export function loadNative(): Native {
  if (cached) return cached;
  const root = packageRoot();
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => Native;
    cached = load(root);
  } catch (err) {
    throw explainLoadFailure(err, root);
  }
  return cached;
}
