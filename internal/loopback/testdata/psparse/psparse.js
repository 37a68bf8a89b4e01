'use strict';
// psparse: parse PowerShell files with the tree-sitter PowerShell grammar
// and exit non-zero if any has a syntax error.
//
// Usage: node psparse.js FILE...
// Prints "FILE:LINE:COL: ERROR|MISSING <node>" for each problem (1-based)
// and exits 1 if any was found, 2 on a usage or load error, 0 when every
// file parsed clean. Used by internal/loopback's Go tests.
// Liftoff only: without it, V8 spends seconds optimizing the 1 MB grammar in
// background threads that the process then waits for on exit.
require('v8').setFlagsFromString('--liftoff-only');
const fs = require('fs');
const path = require('path');
const { Parser, Language } = require('web-tree-sitter');

// problems walks the tree and collects ERROR and MISSING nodes.
function problems(tree) {
  const found = [];
  const cursor = tree.walk();
  let descend = true;
  for (;;) {
    const node = cursor.currentNode;
    if (descend && (node.isError || node.isMissing)) {
      const kind = node.isMissing ? 'MISSING ' + node.type : 'ERROR';
      found.push({ row: node.startPosition.row + 1, col: node.startPosition.column + 1, kind });
    }
    if (descend && node.hasError && cursor.gotoFirstChild()) {
      continue;
    }
    if (cursor.gotoNextSibling()) {
      descend = true;
      continue;
    }
    if (!cursor.gotoParent()) {
      break;
    }
    descend = false;
  }
  return found;
}

async function main(files) {
  if (files.length === 0) {
    process.stderr.write('usage: node psparse.js FILE...\n');
    return 2;
  }
  await Parser.init();
  const wasm = path.join(path.dirname(require.resolve('tree-sitter-powershell/package.json')),
    'tree-sitter-powershell.wasm');
  const lang = await Language.load(wasm);
  const parser = new Parser();
  parser.setLanguage(lang);
  let bad = 0;
  for (const f of files) {
    const tree = parser.parse(fs.readFileSync(f, 'utf8'));
    if (tree === null) {
      process.stdout.write(`${f}: parser returned no tree\n`);
      bad++;
      continue;
    }
    for (const p of problems(tree)) {
      process.stdout.write(`${f}:${p.row}:${p.col}: ${p.kind}\n`);
      bad++;
    }
    tree.delete();
  }
  return bad > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`psparse: ${err && err.stack ? err.stack : err}\n`); process.exitCode = 2; },
);
