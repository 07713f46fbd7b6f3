import { Effect, Layer, Option } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpSerialization, OtlpTracer } from "effect/observability"

/**
 * Trace export: spans (HTTP, gRPC, SQL, Kafka, every `Service.method`) go to an OTLP/HTTP collector when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set; otherwise they stay in-process (ids still reach logs and propagate).
 */
export const layer = (resource: {
  readonly service: string
  readonly version: string
  /** OTEL_EXPORTER_OTLP_ENDPOINT, validated with the rest of the config (Config.base). */
  readonly endpoint: Option.Option<URL>
}) =>
  Layer.unwrap(
    Effect.sync(() => {
      const endpoint = resource.endpoint
      if (Option.isNone(endpoint)) return Layer.empty
      const base = endpoint.value.toString().replace(/\/$/, "")
      return OtlpTracer.layer({
        url: `${base}/v1/traces`,
        resource: { serviceName: resource.service, serviceVersion: resource.version },
      }).pipe(Layer.provide([OtlpSerialization.layerJson, FetchHttpClient.layer]))
    }),
  )
