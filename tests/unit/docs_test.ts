/**
 * The design record names its proofs: every `` `tests/…_test.ts`: "test name" `` in the docs must
 * be a test that exists in that file, and every journey and edge case in docs/design.md must name
 * at least one. Renaming or deleting a test without updating the docs fails here.
 */
import assert from "node:assert/strict";

const DOCS = ["README.md", "CONTRIBUTING.md", "bench/README.md"];
for (const entry of Deno.readDirSync("docs")) {
  if (entry.name.endsWith(".md")) DOCS.push(`docs/${entry.name}`);
}

/** Markdown wraps lines anywhere, so compare with whitespace collapsed. */
const flat = (text: string) => text.replace(/\s+/g, " ");
const REFERENCE = /`(tests\/[\w\/.-]+\.ts)`: "([^"]+)"/g;

function references(text: string): Array<{ file: string; name: string }> {
  return [...flat(text).matchAll(REFERENCE)].map((m) => ({ file: m[1], name: m[2] }));
}

Deno.test("docs: every test the docs name exists, by file and name", () => {
  let count = 0;
  for (const doc of DOCS) {
    for (const { file, name } of references(Deno.readTextFileSync(doc))) {
      count++;
      let source: string;
      try {
        source = Deno.readTextFileSync(file);
      } catch {
        assert.fail(`${doc} names ${file}, which does not exist`);
      }
      // The name as the string literal the test is declared with.
      assert.ok(
        flat(source).includes(JSON.stringify(name)),
        `${doc} names "${name}" in ${file}, which has no such test`,
      );
    }
  }
  assert.ok(count >= 30, `only ${count} test references in the docs`);
});

Deno.test("docs: every journey and edge case in the design record names a test", () => {
  const text = Deno.readTextFileSync("docs/design.md");
  for (const heading of ["## User journeys", "## Edge cases"]) {
    const start = text.indexOf(heading);
    assert.ok(start >= 0, `docs/design.md has no "${heading}"`);
    const end = text.indexOf("\n## ", start + heading.length);
    const section = text.slice(start, end < 0 ? undefined : end);
    // List items: "1. ..." or "- ...", each up to the next item.
    const items = section.split(/\n(?=\d+\. |- )/).slice(1);
    assert.ok(items.length >= 5, `${heading}: only ${items.length} items`);
    for (const item of items) {
      assert.ok(
        references(item).length > 0,
        `${heading}: no test named in "${item.slice(0, 60)}…"`,
      );
    }
  }
});
