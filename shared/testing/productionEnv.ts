import { devPrivateKey, privateKeyText, publicKeyText } from "../ServiceIdentity.ts"

/**
 * What a function needs beyond its data stores to start with `NODE_ENV=production` in a test or a benchmark: a service
 * key set explicitly (the development one, fine on a test machine) and every function's public key.
 */
export const productionEnv = (name: string, functions: ReadonlyArray<string>): Record<string, string> => ({
  NODE_ENV: "production",
  SERVICE_KEY: privateKeyText(devPrivateKey(name)),
  SERVICE_PUBLIC_KEYS: JSON.stringify(Object.fromEntries(functions.map((f) => [f, publicKeyText(devPrivateKey(f))]))),
})
