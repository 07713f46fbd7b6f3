import { Context, Effect, Layer, Option } from "effect"

/**
 * Where each upstream function answers HTTP. The static implementation reads `<NAME>_URL` (default the manifest's
 * port on this host); a Kubernetes-DNS or Consul implementation can replace it without touching the proxy.
 */
export class ServiceRegistry extends Context.Service<
  ServiceRegistry,
  {
    /** The names of every upstream the registry knows. */
    readonly names: ReadonlyArray<string>
    /** The base URL (origin) of an upstream; None when the registry does not know it. */
    resolve(name: string): Effect.Effect<Option.Option<URL>>
    /**
     * What `resolve` would answer, when known without waiting (undefined otherwise: the proxy then resolves through
     * `resolve`). The gateway's hot path asks this first.
     */
    resolveNow(name: string): URL | undefined
  }
>()("gateway/ServiceRegistry") {
  /** A fixed map of upstream base URLs (from configuration). */
  static readonly layerStatic = (urls: Readonly<Record<string, URL>>) =>
    Layer.succeed(
      ServiceRegistry,
      ServiceRegistry.of({
        names: Object.keys(urls),
        resolve: (name) => Effect.succeed(Option.fromUndefinedOr(urls[name])),
        resolveNow: (name) => (Object.hasOwn(urls, name) ? urls[name] : undefined),
      }),
    )
}
