// Writes dist/lib/index.mjs: an ES module that re-exports the CommonJS build by name, so
// `import { tensor } from 'deepseek-kernels'` and `require('deepseek-kernels')` share one instance.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const names = Object.keys(require(join(root, 'dist/lib/index.js'))).filter((n) => n !== 'default' && n !== '__esModule');
const body = [
  "import { createRequire } from 'node:module';",
  'const dsk = createRequire(import.meta.url)(\'./index.js\');',
  'export default dsk;',
  `export const { ${names.join(', ')} } = dsk;`,
  '',
].join('\n');
writeFileSync(join(root, 'dist/lib/index.mjs'), body);
