// Generates a service identity key pair per function (see shared/ServiceIdentity.ts): prints each function's
// SERVICE_KEY (a secret: give it to that function only) and the SERVICE_PUBLIC_KEYS map every function gets.
import { generateKeyPairSync } from "node:crypto"
import { manifests } from "../functions/registry.ts"
import { privateKeyText, publicKeyText } from "../shared/ServiceIdentity.ts"

const keys = manifests.map((m) => ({ name: m.name, ...generateKeyPairSync("ed25519") }))
const publicKeys = Object.fromEntries(keys.map((k) => [k.name, publicKeyText(k.publicKey)]))
process.stdout.write(
  `${JSON.stringify(
    {
      SERVICE_PUBLIC_KEYS: JSON.stringify(publicKeys),
      SERVICE_KEY: Object.fromEntries(keys.map((k) => [k.name, privateKeyText(k.privateKey)])),
    },
    null,
    2,
  )}\n`,
)
