/** Native push settings: a platform is on with all of its settings, refused with some of them. */
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../../config.ts";
import { apnsKey, serviceAccount } from "../fakes/credentials.ts";

const account = await serviceAccount(() => "https://oauth2.googleapis.com/token");
const apns = await apnsKey();
const files: Record<string, string> = {
  "/keys/sa.json": account.json(),
  "/keys/AuthKey.p8": apns.privateKey,
};
const readFile = (path: string) => {
  if (path in files) return files[path];
  throw new Deno.errors.NotFound(path);
};

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig({ AUTH_MODE: "dev", ...env }, readFile);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

const FCM = { FCM_PROJECT_ID: "blotter-prod", FCM_SERVICE_ACCOUNT_FILE: "/keys/sa.json" };
const APNS = {
  APNS_KEY_ID: apns.keyId,
  APNS_TEAM_ID: apns.teamId,
  APNS_KEY_FILE: "/keys/AuthKey.p8",
  APNS_TOPIC: apns.topic,
};

Deno.test("native push is off unless configured, on with every setting, with the defaults", () => {
  const off = loadConfig({ AUTH_MODE: "dev" });
  assert.equal(off.fcm, null);
  assert.equal(off.apns, null);
  const on = loadConfig({ AUTH_MODE: "dev", ...FCM, ...APNS }, readFile);
  assert.equal(on.fcm?.projectId, "blotter-prod");
  assert.equal(on.fcm?.serviceAccount.clientEmail, account.clientEmail);
  assert.equal(on.fcm?.serviceAccount.tokenUri, "https://oauth2.googleapis.com/token");
  assert.equal(on.fcm?.endpoint, "https://fcm.googleapis.com");
  assert.equal(on.apns?.endpoint, "https://api.push.apple.com");
  assert.equal(on.apns?.topic, "com.example.blotter");
  // Given inline instead of as files: the same.
  const inline = loadConfig({
    AUTH_MODE: "dev",
    FCM_PROJECT_ID: "p",
    FCM_SERVICE_ACCOUNT: account.json(),
    APNS_KEY_ID: apns.keyId,
    APNS_TEAM_ID: apns.teamId,
    APNS_KEY: apns.privateKey,
    APNS_TOPIC: apns.topic,
    APNS_ENDPOINT: "https://api.sandbox.push.apple.com/",
  });
  assert.equal(inline.fcm?.serviceAccount.privateKey, account.privateKey);
  assert.equal(inline.apns?.endpoint, "https://api.sandbox.push.apple.com");
});

Deno.test("a half-configured platform is refused at start, naming what is missing", () => {
  const fcm = problemsOf({ FCM_PROJECT_ID: "p" });
  assert.equal(fcm.length, 1);
  assert.match(fcm[0], /^FCM: .*FCM_SERVICE_ACCOUNT or FCM_SERVICE_ACCOUNT_FILE/);
  const apnsHalf = problemsOf({ APNS_KEY_ID: apns.keyId, APNS_TOPIC: apns.topic });
  assert.equal(apnsHalf.length, 1);
  assert.match(apnsHalf[0], /^APNs: .*APNS_TEAM_ID, APNS_KEY or APNS_KEY_FILE/);
  // An endpoint alone is a setting of the platform too.
  assert.match(
    problemsOf({ APNS_ENDPOINT: "https://api.sandbox.push.apple.com" })[0],
    /APNS_KEY_ID/,
  );
  // Reported together with every other bad setting.
  const all = problemsOf({ PORT: "x", FCM_PROJECT_ID: "p", APNS_TOPIC: "com.example" });
  for (const start of ["PORT", "FCM:", "APNs:"]) {
    assert.ok(all.some((p) => p.startsWith(start)), `${start} in ${all.join(" | ")}`);
  }
});

Deno.test("keys that are not what the platform needs are refused, without printing them", () => {
  const problems = problemsOf({
    ...FCM,
    FCM_SERVICE_ACCOUNT_FILE: "/keys/missing.json",
    ...APNS,
    APNS_KEY_FILE: "",
    APNS_KEY: account.privateKey, // an RSA key where a P-256 one belongs
    FCM_ENDPOINT: "ftp://fcm",
  });
  assert.ok(
    problems.some((p) => /^FCM_SERVICE_ACCOUNT_FILE: cannot read \/keys\/missing.json/.test(p)),
  );
  assert.ok(problems.some((p) => /^APNS_KEY: is not a P-256 private key/.test(p)));
  assert.ok(problems.some((p) => p.startsWith("FCM_ENDPOINT")));
  const text = problems.join("\n");
  assert.ok(!text.includes("PRIVATE KEY"), "no key material in the messages");
  const wrongJson = problemsOf({
    FCM_PROJECT_ID: "p",
    FCM_SERVICE_ACCOUNT: '{"client_email":"x"}',
  });
  assert.match(wrongJson[0], /FCM_SERVICE_ACCOUNT: needs private_key, token_uri/);
  const both = problemsOf({ ...FCM, FCM_SERVICE_ACCOUNT: account.json() });
  assert.ok(both.some((p) => p.startsWith("FCM_SERVICE_ACCOUNT / FCM_SERVICE_ACCOUNT_FILE")));
});
