// Builds Karma's web page into ../shared/web/dist, the folder the karma binary embeds
// (shared/web, go:embed): app.js (the page and its libraries, one minified ES module), app.css,
// index.html, THIRD_PARTY.txt (each bundled package's name, version, licence and licence text)
// and build.json (the versions, and the SHA-256 of the sources it was built from: a Go test
// fails when the sources change and the bundle is not rebuilt). Run by `make web` after
// `npm ci`, so the libraries are exactly the lockfile's.
import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'shared', 'web', 'dist');
mkdirSync(out, { recursive: true });

const result = await esbuild.build({
  entryPoints: [join(here, 'src', 'main.js')],
  bundle: true, format: 'esm', minify: true, target: 'es2022', legalComments: 'none',
  outfile: join(out, 'app.js'), metafile: true, logLevel: 'warning',
});
await esbuild.build({ entryPoints: [join(here, 'src', 'style.css')], bundle: true, minify: true, outfile: join(out, 'app.css'), logLevel: 'warning' });
copyFileSync(join(here, 'src', 'index.html'), join(out, 'index.html'));

// The packages bundled into app.js, with their licences.
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (!m || packages.has(m[1])) continue;
  const dir = join(here, 'node_modules', m[1]);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const lic = readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f));
  packages.set(m[1], { name: pkg.name, version: pkg.version, license: pkg.license, text: lic ? readFileSync(join(dir, lic), 'utf8').trim() : '(no licence file in the package)' });
}
const list = [...packages.values()].sort((a, b) => a.name.localeCompare(b.name));
writeFileSync(join(out, 'THIRD_PARTY.txt'),
  'Third-party software bundled into app.js (Karma web page), from web/package-lock.json:\n\n' +
  list.map((p) => `${p.name} ${p.version} (${p.license})\n\n${p.text}\n`).join('\n----\n\n'));

const esbuildVersion = JSON.parse(readFileSync(join(here, 'node_modules', 'esbuild', 'package.json'), 'utf8')).version;
writeFileSync(join(out, 'build.json'), JSON.stringify({
  sources_sha256: sourcesHash(), bundled: list.map((p) => ({ name: p.name, version: p.version, license: p.license })), esbuild: esbuildVersion,
}, null, 2) + '\n');
console.log('built', out, list.map((p) => p.name + '@' + p.version).join(', '));

// sourcesHash is the SHA-256 of every source of the bundle: for each file, sorted by path,
// the line "<path> <sha256 of its bytes>\n" (shared/web's test computes the same).
function sourcesHash() {
  const files = ['build.mjs', 'package.json', 'package-lock.json', ...readdirSync(join(here, 'src')).map((f) => 'src/' + f)].filter((f) => existsSync(join(here, f))).sort();
  const h = createHash('sha256');
  for (const f of files) h.update(f + ' ' + createHash('sha256').update(readFileSync(join(here, f))).digest('hex') + '\n');
  return h.digest('hex');
}
