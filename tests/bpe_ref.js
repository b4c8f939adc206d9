// bpe_ref.js -- the reference GPT-2 encoder for tests/test_bpe.c: the npm package gpt-3-encoder
// (installed by scripts/deps.sh into build/npm) run with node.
//   node tests/bpe_ref.js encode IN OUT   IN's bytes decoded as UTF-8 (invalid bytes -> U+FFFD, the
//                                         WHATWG decoder), encoded; OUT gets the ids, one per line
//   node tests/bpe_ref.js decode IN OUT   IN holds ids one per line; OUT gets the decoded text
// The text is encoded in chunks cut before a "\n" that follows a non-whitespace character: the regex
// always starts a piece there (no piece joins whitespace to what precedes it) and the piece that
// ends the chunk holds no whitespace, so no lookahead sees the cut; the ids are those of one call on
// the whole text. Chunking only avoids the package's quadratic array concatenation on large inputs.
const fs = require('fs');
const path = require('path');
const dir = process.env.NORMLAB_NPM_DIR || path.join(__dirname, '..', 'build', 'npm', 'node_modules');
const enc = require(path.join(dir, 'gpt-3-encoder'));
const [mode, inp, out] = process.argv.slice(2);
if (mode === 'encode') {
  const text = new TextDecoder('utf-8').decode(fs.readFileSync(inp));
  const ids = [];
  let start = 0;
  for (let i = 1; i <= text.length; i++) {
    if (i === text.length || (text[i] === '\n' && !/\s/u.test(text[i - 1]) && i - start > 4096)) {
      for (const id of enc.encode(text.slice(start, i))) ids.push(id);
      start = i;
    }
  }
  fs.writeFileSync(out, ids.join('\n') + '\n');
} else if (mode === 'decode') {
  const ids = fs.readFileSync(inp, 'utf-8').split('\n').filter(s => s.length).map(Number);
  fs.writeFileSync(out, enc.decode(ids));
} else {
  console.error('usage: node bpe_ref.js encode|decode IN OUT');
  process.exit(2);
}
