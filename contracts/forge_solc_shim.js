#!/usr/bin/env node
// Makes the npm `solc` package (solcjs, pinned in package.json) answer like the native solc,
// so forge can compile with it (foundry.toml: `solc = "contracts/forge_solc_shim.js"`).
//
// forge runs `solc --version` and `solc --standard-json [--base-path P] [--include-path P]...
// [--allow-paths P,...]` with the standard-JSON input on stdin. The solcjs command line rejects
// those arguments, so this answers them through solc's JS API instead: the version as native
// solc prints it, and the standard-JSON output of `require('solc').compile(input)`. Sources
// given by `urls` rather than `content` are read from the base and include paths.
//
// The output is written with process.stdout.write and node exits on its own: calling
// process.exit would cut off output still queued for a pipe.
'use strict';

const fs = require('fs');
const path = require('path');

const REPO = path.resolve(__dirname, '..');

function loadSolc() {
  try {
    return require(path.join(REPO, 'node_modules', 'solc'));
  } catch (err) {
    process.stderr.write(`forge_solc_shim: the npm package solc is not installed in ${REPO}/node_modules (run ./scripts/setup): ${err.message}\n`);
    process.exit(1);
  }
}

function nativeVersion(solc) {
  // solcjs says "0.8.30+commit.73712a01.Emscripten.clang"; forge reads the version before the platform.
  const match = /^(\d+\.\d+\.\d+\+commit\.[0-9a-f]+)/.exec(solc.version());
  return `${match ? match[1] : solc.version()}.Linux.g++`;
}

function parseArgs(argv) {
  const opts = { version: false, standardJson: false, roots: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (arg.includes('=')) return arg.slice(arg.indexOf('=') + 1);
      i += 1;
      if (i >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[i];
    };
    if (arg === '--version' || arg === '-v') opts.version = true;
    else if (arg === '--standard-json') opts.standardJson = true;
    else if (arg.startsWith('--base-path') || arg.startsWith('--include-path')) opts.roots.push(value());
    else if (arg.startsWith('--allow-paths')) value(); // every read below stays under the given roots
    else if (arg === '-' ) continue; // stdin, as with --standard-json
    else throw new Error(`unsupported argument ${JSON.stringify(arg)} (this shim serves forge: --version, --standard-json)`);
  }
  return opts;
}

function findImports(roots) {
  return (name) => {
    for (const root of roots.length ? roots : [process.cwd()]) {
      const file = path.resolve(root, name);
      const within = path.relative(path.resolve(root), file);
      if (within.startsWith('..') || path.isAbsolute(within)) continue;
      try {
        return { contents: fs.readFileSync(file, 'utf8') };
      } catch (_) {
        // try the next root
      }
    }
    return { error: `file ${name} not found under ${roots.join(', ') || process.cwd()}` };
  };
}

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`forge_solc_shim: ${err.message}\n`);
    process.exitCode = 1;
    return;
  }
  const solc = loadSolc();
  if (opts.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${nativeVersion(solc)}\n`);
    return;
  }
  if (!opts.standardJson) {
    process.stderr.write('forge_solc_shim: pass --version or --standard-json (input on stdin)\n');
    process.exitCode = 1;
    return;
  }
  const input = fs.readFileSync(0, 'utf8');
  process.stdout.write(solc.compile(input, { import: findImports(opts.roots) }));
}

main();
