/**
 * The write statements' parameters, built here as the text Postgres reads: array literals, and
 * JSON texts joined by a record separator that the statement splits with `string_to_array`.
 *
 * postgres.js builds an array literal from a JS array element by element through a generic
 * serializer, quoting and escaping every element with two regex passes: for the JSON bodies and
 * NOTIFY payloads (a few kB per report, every `"` escaped) and twenty array parameters per group
 * that was ~60 µs of server CPU per report at 1,000 reports/s (bench/README.md). A string passes
 * through its serializer untouched, and Postgres types the parameter from the statement's cast.
 */

/**
 * The separator between the texts of `records`: ASCII RS (U+001E). `JSON.stringify` writes every
 * control character inside a string as an escape (`\u001e`), so it never occurs in JSON text,
 * and no splitting can go wrong. The statements split with `string_to_array($n, chr(30))`.
 */
const RS = "\x1e";

/**
 * JSON texts (or anything without U+001E) as one parameter, for `string_to_array($n, chr(30))`.
 * An empty list is the empty string, which `string_to_array` reads as an empty array.
 */
export function records(texts: readonly string[]): string {
  return texts.join(RS);
}

/**
 * An array literal of values that never need quoting: uuids, integers, ISO timestamps — none
 * holds a space, comma, brace, quote or backslash, none is empty or the word NULL.
 */
export function bareArray(values: readonly (string | number)[]): string {
  return `{${values.join(",")}}`;
}

/** An array literal of booleans. */
export function boolArray(values: readonly boolean[]): string {
  return `{${values.map((v) => (v ? "t" : "f")).join(",")}}`;
}

const QUOTED = /["\\]/g;

/**
 * An array literal of any texts (user ids, exec ids, client order ids): each element quoted,
 * with `"` and `\` escaped, so commas, braces, spaces and the word NULL stay text; `null` is NULL.
 */
export function quotedArray(values: readonly (string | null)[]): string {
  let out = "{";
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ",";
    const v = values[i];
    out += v === null ? "NULL" : `"${v.replace(QUOTED, "\\$&")}"`;
  }
  return out + "}";
}
