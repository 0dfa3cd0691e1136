// tests/diagrams/check-mermaid.mjs: parse every Mermaid diagram in README.md
// and docs/ with the mermaid package itself (the parser GitHub's renderer
// uses), so a diagram that would not render fails here, not on GitHub.
//
//   node tests/diagrams/check-mermaid.mjs REPO_ROOT NODE_MODULES_DIR
//
// Prints one line per diagram and ends with "N passed, M failed"; exits 1 when
// any diagram fails. Run through `make test-diagrams`, which installs mermaid
// and jsdom (mermaid needs a DOM even to parse) into build/mermaid/.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [root, modules] = process.argv.slice(2);
if (!root || !modules) {
    console.error('usage: check-mermaid.mjs REPO_ROOT NODE_MODULES_DIR');
    process.exit(2);
}
const require = createRequire(path.join(modules, 'package.json'));
const { JSDOM } = require('jsdom');
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const mermaid = (await import(require.resolve('mermaid'))).default;
mermaid.initialize({ startOnLoad: false });

// README.md and every docs/**/*.md, like the docs tests read them.
function markdownFiles() {
    const out = [path.join(root, 'README.md')];
    const walk = (dir) => {
        for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
            const p = path.join(dir, e.name);
            if (e.isDirectory()) walk(p);
            else if (e.name.endsWith('.md')) out.push(p);
        }
    };
    walk(path.join(root, 'docs'));
    return out.sort();
}

// The ```mermaid blocks of a Markdown text, with the line of their fence. A
// block quoted inside a longer fence is part of that block, not a diagram.
function diagrams(text) {
    const out = [];
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
        const m = /^(`{3,}|~{3,})(.*)$/.exec(lines[i]);
        if (!m) continue;
        const fence = m[1];
        const info = m[2].trim();
        const start = i;
        const body = [];
        for (i++; i < lines.length; i++) {
            const c = /^(`{3,}|~{3,})\s*$/.exec(lines[i]);
            if (c && c[1][0] === fence[0] && c[1].length >= fence.length) break;
            body.push(lines[i]);
        }
        if (info === 'mermaid') out.push({ line: start + 1, source: body.join('\n') + '\n' });
    }
    return out;
}

let passed = 0;
let failed = 0;
for (const file of markdownFiles()) {
    const rel = path.relative(root, file);
    for (const d of diagrams(fs.readFileSync(file, 'utf8'))) {
        try {
            const r = await mermaid.parse(d.source);
            console.log(`ok   ${rel}:${d.line} (${r.diagramType})`);
            passed++;
        } catch (e) {
            const msg = String((e && e.message) || e).split('\n').slice(0, 4).join('\n       ');
            console.log(`FAIL ${rel}:${d.line}\n       ${msg}`);
            failed++;
        }
    }
}
if (passed + failed === 0) {
    console.log('FAIL no Mermaid diagram found');
    failed++;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
