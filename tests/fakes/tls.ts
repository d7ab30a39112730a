/**
 * A test CA and a server certificate it signs, made with openssl (DESIGN.md field notes: rustls
 * refuses a self-signed certificate used by the server itself, so the CA is CA:TRUE and the
 * server's certificate CA:FALSE with subjectAltName=IP:127.0.0.1). Trust the CA with
 * `DENO_CERT=caPath` (a subprocess) or `Deno.createHttpClient({ caCerts })` (in-process).
 */

/** The files and PEMs of a test PKI. */
export interface TestPki {
  dir: string;
  caPath: string;
  caPem: string;
  keyPem: string;
  certPem: string;
  remove(): Promise<void>;
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Makes a CA and a certificate for 127.0.0.1 signed by it, in a fresh temp dir. */
export async function makeTestPki(): Promise<TestPki> {
  const dir = await Deno.makeTempDir({ prefix: "blotter-pki-" });
  await Deno.writeTextFile(
    `${dir}/ca.cnf`,
    "[req]\ndistinguished_name=dn\n[dn]\n[ext]\nbasicConstraints=critical,CA:TRUE\n" +
      "keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n",
  );
  await Deno.writeTextFile(
    `${dir}/server.cnf`,
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n" +
      "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n" +
      "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n",
  );
  await openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=Blotter test CA",
    "-config",
    "ca.cnf",
    "-extensions",
    "ext",
  ]);
  await openssl(dir, [
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=127.0.0.1",
  ]);
  await openssl(dir, [
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "server.cnf",
  ]);
  return {
    dir,
    caPath: `${dir}/ca.pem`,
    caPem: await Deno.readTextFile(`${dir}/ca.pem`),
    keyPem: await Deno.readTextFile(`${dir}/server.key`),
    certPem: await Deno.readTextFile(`${dir}/server.pem`),
    remove: () => Deno.remove(dir, { recursive: true }),
  };
}
