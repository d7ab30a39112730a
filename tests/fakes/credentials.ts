/** Credentials a test makes for the fakes: a service account's RSA key, an APNs P-256 key. */
import { pkcs8Pem } from "./jose.ts";

/** A Google service account whose key the FCM fake verifies grants with. */
export async function serviceAccount(tokenUri: () => string) {
  const pair = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  );
  const privateKey = await pkcs8Pem(pair.privateKey);
  const clientEmail = "blotter-push@blotter-test.iam.gserviceaccount.com";
  return {
    clientEmail,
    privateKey,
    publicKey: pair.publicKey,
    /** The key file's JSON, as Google hands it out (with the fake's token_uri). */
    json: () =>
      JSON.stringify({
        type: "service_account",
        project_id: "blotter-test",
        private_key_id: "0123456789abcdef",
        private_key: privateKey,
        client_email: clientEmail,
        token_uri: tokenUri(),
      }),
  };
}

/** An APNs auth key (.p8) and the ids that go with it. */
export async function apnsKey() {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  return {
    keyId: "ABC123DEFG",
    teamId: "TEAM456XYZ",
    topic: "com.example.blotter",
    privateKey: await pkcs8Pem(pair.privateKey),
    publicKey: pair.publicKey,
  };
}
