/**
 * The write statements' parameters as Postgres reads them (store/pg/wire.ts): what goes in as an
 * array literal or as records comes back out of Postgres exactly, however odd the text.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { bareArray, boolArray, quotedArray, records } from "../../store/pg/wire.ts";
import { DATABASE_URL, NO_POSTGRES } from "../pg_helper.ts";

const ODD = [
  `plain`,
  `"quoted"`,
  `back\\slash`,
  `\\"both\\"`,
  `{braces},commas`,
  `NULL`,
  ``,
  ` spaced `,
  `ünïcödé 中文 📈`,
  `{"k":"v"}`,
];

Deno.test({
  name: "postgres wire: texts, ids, numbers, booleans and records come back from Postgres as sent",
  ignore: NO_POSTGRES,
  async fn() {
    const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      const texts = [...ODD, null];
      const ids = [crypto.randomUUID(), crypto.randomUUID()];
      const seqs = [1, 42, 9007199254740991];
      const ats = [new Date(0).toISOString(), new Date().toISOString()];
      const json = ODD.map((s) => JSON.stringify({ s, nested: { s, control: "\x1e\x00\n" } }));
      // Read back as JSON text: postgres.js parses a NULL element of an array as "NULL".
      const [{ row }] = await sql.unsafe(
        `select json_build_object(
          'texts', $1::text[], 'ids', $2::uuid[], 'seqs', $3::bigint[],
          'ats', $4::timestamptz[], 'flags', $5::boolean[],
          'records', string_to_array($6, chr(30)), 'none', string_to_array($7, chr(30))
        )::text as row`,
        [
          quotedArray(texts),
          bareArray(ids),
          bareArray(seqs),
          bareArray(ats),
          boolArray([true, false, true]),
          records(json),
          records([]),
        ],
        { prepare: true },
      );
      const got = JSON.parse(row);
      assert.deepEqual(got.texts, texts);
      assert.deepEqual(got.ids, ids);
      assert.deepEqual(got.seqs, seqs);
      assert.deepEqual(got.ats.map((t: string) => new Date(t).toISOString()), ats);
      assert.deepEqual(got.flags, [true, false, true]);
      assert.deepEqual(got.records, json);
      assert.deepEqual(got.records.map((r: string) => JSON.parse(r).s), ODD);
      assert.deepEqual(got.none, []);
    } finally {
      await sql.end();
    }
  },
});

Deno.test("wire: an empty list of any kind is an empty array literal", () => {
  assert.equal(quotedArray([]), "{}");
  assert.equal(bareArray([]), "{}");
  assert.equal(boolArray([]), "{}");
  assert.equal(records([]), "");
});
