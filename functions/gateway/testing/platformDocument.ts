import { ConfigProvider, Effect } from "effect"
import { HttpApi, OpenApi } from "effect/http-api"
import { proxyOptions } from "../App.ts"
import { type GatewayConfig, load, upstreamManifests } from "../Config.ts"
import { manifest } from "../module.ts"
import { merge } from "../OpenApi.ts"
import { settingsOf } from "../RouteSettings.ts"
import { fromManifests, type RouteTable } from "../RouteTable.ts"

/** Each upstream function's HttpApi, found in its `Api.ts` (the one exported HttpApi there). */
export const upstreamApis = async (): Promise<Array<{ readonly upstream: string; readonly api: HttpApi.Top }>> =>
  Promise.all(
    upstreamManifests().map(async (m) => {
      const module = (await import(`../../${m.name}/Api.ts`)) as Record<string, unknown>
      const apis = Object.values(module).filter(HttpApi.isHttpApi)
      if (apis.length !== 1) throw new Error(`functions/${m.name}/Api.ts exports ${apis.length} HttpApis, not one`)
      return { upstream: m.name, api: apis[0]! }
    }),
  )

/** The gateway's configuration from an environment (a database URL is filled in: it is not used here). */
export const gatewayConfig = (env: Record<string, string> = {}): Promise<GatewayConfig> =>
  Effect.runPromise(
    load().pipe(
      Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ DATABASE_URL: "postgres://x/x", ...env }))),
    ),
  )

/**
 * The platform's document as the gateway builds it, in-process: every upstream's own document (`OpenApi.fromApi` of
 * its HttpApi, what it serves at /openapi.json) merged with the gateway's settings from `env`.
 */
export const platformDocument = async (
  env: Record<string, string> = {},
): Promise<{
  readonly document: Record<string, unknown>
  readonly table: RouteTable
  readonly config: GatewayConfig
}> => {
  const config = await gatewayConfig(env)
  const table = fromManifests(upstreamManifests())
  const documents = (await upstreamApis()).map(({ upstream, api }) => ({
    upstream,
    document: OpenApi.fromApi(api as unknown as Parameters<typeof OpenApi.fromApi>[0]) as unknown,
  }))
  const options = proxyOptions(config, table)
  const document = merge(
    table,
    documents,
    { title: "Platform API", version: manifest.version },
    { settingsOf: (route) => settingsOf(route, options) },
  )
  return { document, table, config }
}
