/**
 * The open-file arithmetic (server/descriptors.ts) and the once-per-episode log (log.ts's Episode)
 * that keep a crowd from taking the server, or its log, down.
 */
import assert from "node:assert/strict";
import {
  openDescriptors,
  openFileLimit,
  pressureMarkFor,
  reservedDescriptors,
  streamCapFor,
} from "../../server/descriptors.ts";
import { Episode, type Logger } from "../../log.ts";

Deno.test("descriptors: the stream cap leaves room for the reserve and for plain requests", () => {
  for (const limit of [256, 1_024, 4_096, 20_000, 65_536, 1_048_576]) {
    const cap = streamCapFor(limit);
    const reserve = reservedDescriptors(limit);
    const mark = pressureMarkFor(limit);
    // Streams at the cap, plus the reserve, leave a quarter of the rest for everything else.
    assert.ok(cap + reserve <= limit - Math.floor((limit - reserve) / 4), `limit ${limit}`);
    // Shedding starts above a full house of streams and below the limit itself.
    assert.ok(cap + 64 < mark && mark < limit, `limit ${limit}: cap ${cap}, mark ${mark}`);
  }
  assert.equal(streamCapFor(256), 132);
  assert.equal(streamCapFor(1), 1, "never a cap of zero");
});

Deno.test("descriptors: this process's limit and open count are read from the system", () => {
  const limit = openFileLimit();
  const open = openDescriptors();
  assert.ok(limit >= 256, `limit ${limit}`);
  assert.ok(open !== null && open > 3 && open < limit, `open ${open}`);
  const file = Deno.openSync(new URL(import.meta.url));
  try {
    assert.equal(openDescriptors(), open + 1, "one more file open, one more counted");
  } finally {
    file.close();
  }
});

function recordingLogger(lines: string[]): Logger {
  const log: Logger = {
    debug: (m) => lines.push(`debug ${m}`),
    info: (m, f) => lines.push(`info ${m}${f ? " " + JSON.stringify(f) : ""}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
    with: () => log,
  };
  return log;
}

Deno.test("Episode: a thousand occurrences are two lines, begun and ended", () => {
  const lines: string[] = [];
  const episode = new Episode(recordingLogger(lines), { began: "full", ended: "room again" });
  for (let i = 0; i < 1_000; i++) episode.occurred();
  assert.ok(episode.active);
  episode.resolved();
  episode.resolved(); // an end with no episode says nothing
  assert.deepEqual(lines, ["warn full", 'info room again {"occurrences":1000}']);
  assert.ok(!episode.active);
  episode.occurred();
  assert.equal(lines.length, 3, "a new episode is logged again");
  episode.resolved();
});

Deno.test("Episode: with quietMs, a burst ends by itself once quiet", async () => {
  const lines: string[] = [];
  const episode = new Episode(recordingLogger(lines), {
    began: "refusing",
    ended: "taking again",
    level: "error",
    quietMs: 30,
  });
  episode.occurred();
  episode.occurred();
  const ended = new Promise<void>((resolve) => {
    const poll = setInterval(() => !episode.active && (clearInterval(poll), resolve()), 5);
  });
  await ended;
  assert.deepEqual(lines, ["error refusing", 'info taking again {"occurrences":2}']);
});
