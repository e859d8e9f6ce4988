// A small `age` command over typage (npm `age-encryption`, the TypeScript
// implementation by the author of age's Go reference), which the tests use
// as an age v1.3 implementation of the `mlkem768x25519` (hybrid
// post-quantum) and X25519 recipient types that this project did not write.
//
//   node age.mjs -d -i IDENTITY_FILE [-o OUT] IN   decrypt
//   node age.mjs -r RECIPIENT [-r …] [-o OUT] IN   encrypt
//   node age.mjs --keygen [-o OUT]                 new hybrid identity
//   node age.mjs --to-recipient IDENTITY           print its recipient
//
// Identity files are read as age-keygen writes them: '#' comments and blank
// lines skipped, every other line one identity. Exit status 1 on any error.
import { readFileSync, writeFileSync } from "node:fs";
import { Decrypter, Encrypter, generateHybridIdentity, identityToRecipient } from "age-encryption";

function fail(msg) {
  process.stderr.write(`age.mjs: ${msg}\n`);
  process.exit(1);
}

const args = process.argv.slice(2);
let mode = null;
let out = null;
let input = null;
const identities = [];
const recipients = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const next = () => (++i < args.length ? args[i] : fail(`${a} needs a value`));
  if (a === "-d") mode = "decrypt";
  else if (a === "--keygen") mode = "keygen";
  else if (a === "--to-recipient") { mode = "to-recipient"; input = next(); }
  else if (a === "-i") identities.push(next());
  else if (a === "-r") { mode = mode ?? "encrypt"; recipients.push(next()); }
  else if (a === "-o") out = next();
  else if (input === null) input = a;
  else fail(`unexpected argument ${a}`);
}

function emit(bytes) {
  if (out === null) process.stdout.write(bytes);
  else writeFileSync(out, bytes, { mode: 0o600 });
}

function keyLines(path) {
  return readFileSync(path, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

try {
  if (mode === "keygen") {
    const id = await generateHybridIdentity();
    const rcpt = await identityToRecipient(id);
    emit(`# public key: ${rcpt}\n${id}\n`);
  } else if (mode === "to-recipient") {
    process.stdout.write(`${await identityToRecipient(input)}\n`);
  } else if (mode === "decrypt") {
    if (identities.length === 0 || input === null) fail("decrypt needs -i IDENTITY_FILE and IN");
    const d = new Decrypter();
    for (const path of identities) for (const line of keyLines(path)) d.addIdentity(line);
    emit(await d.decrypt(readFileSync(input), "uint8array"));
  } else if (mode === "encrypt") {
    if (input === null) fail("encrypt needs IN");
    const e = new Encrypter();
    for (const r of recipients) e.addRecipient(r);
    emit(await e.encrypt(readFileSync(input)));
  } else {
    fail("give -d, -r or --keygen");
  }
} catch (e) {
  fail(e?.message ?? String(e));
}
