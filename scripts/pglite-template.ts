// postinstall: prepares the embedded Postgres template so that `npm start` on a new data folder skips initdb (see
// infra/embedded/template.ts). Never fails the install: without the template `npm start` runs initdb itself.
import { makeTemplate } from "../infra/embedded/template.ts"

const started = performance.now()
try {
  const { path, made } = await makeTemplate()
  if (made) console.log(`embedded Postgres template: ${path} (${((performance.now() - started) / 1000).toFixed(1)} s)`)
} catch (error) {
  console.warn(`embedded Postgres template not made (npm start will run initdb): ${String(error)}`)
}
