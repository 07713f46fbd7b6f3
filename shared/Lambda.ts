import middy from "@middy/core"
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda"
import { Context, Effect, identity, Layer } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import * as ErrorBus from "./ErrorBus.ts"
import type { FunctionApp } from "./FunctionApp.ts"
import { ClientIp } from "./RequestContext.ts"

// How long an invocation waits for its error reports before answering (a report's request is bounded anyway).
const LAMBDA_FLUSH_MS = 2_000

// Content types whose bodies travel as text; everything else is base64 in the Lambda result.
const TEXTUAL = /^(text\/|application\/(json|problem\+json|xml|javascript)|[^;]*\+json)/

/** Turns an API Gateway (HTTP API, payload v2) event into a Fetch Request. */
export const toRequest = (event: APIGatewayProxyEventV2): Request => {
  const headers = new Headers()
  for (const [name, value] of Object.entries(event.headers ?? {})) if (value !== undefined) headers.set(name, value)
  if (event.cookies?.length) headers.set("cookie", event.cookies.join("; "))
  const host = event.requestContext.domainName ?? headers.get("host") ?? "lambda.local"
  const query = event.rawQueryString ? `?${event.rawQueryString}` : ""
  const method = event.requestContext.http.method.toUpperCase()
  const body =
    event.body === undefined || method === "GET" || method === "HEAD"
      ? undefined
      : event.isBase64Encoded
        ? Buffer.from(event.body, "base64")
        : event.body
  return new Request(`https://${host}${event.rawPath}${query}`, { method, headers, body })
}

/** Turns a Fetch Response into an API Gateway v2 structured result. */
export const toResult = async (response: Response): Promise<APIGatewayProxyStructuredResultV2> => {
  const headers: Record<string, string> = {}
  response.headers.forEach((value, name) => {
    if (name !== "set-cookie") headers[name] = value
  })
  const cookies = response.headers.getSetCookie()
  const textual = TEXTUAL.test(response.headers.get("content-type") ?? "")
  const bytes = Buffer.from(await response.arrayBuffer())
  return {
    statusCode: response.status,
    headers,
    ...(cookies.length > 0 ? { cookies } : {}),
    body: textual ? bytes.toString("utf8") : bytes.toString("base64"),
    isBase64Encoded: !textual,
  }
}

/**
 * The middy Lambda entry of a function (its `App.ts` `app`): the same guarded HTTP app the container serves, built once per cold start
 * and reused across invocations.
 */
export const handler = (app: FunctionApp) => {
  const lambda = app.lambda
  if (lambda === undefined) throw new Error(`${app.manifest.name} does not run on Lambda`)
  const served = Layer.unwrap(Effect.map(app.config, lambda))
  const web = HttpRouter.toWebHandler(served.pipe(Layer.provide(HttpServer.layerServices)) as never, {
    disableLogger: true,
    middleware: identity,
  }) as {
    readonly handler: (request: Request, context: Context.Context<never>) => Promise<Response>
    readonly dispose: () => Promise<void>
  }
  // API Gateway has no socket to the client: its address comes from the event (throttles and audit need it).
  return middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>().handler(async (event) => {
    const result = await toResult(
      await web.handler(
        toRequest(event),
        Context.make(ClientIp, event.requestContext.http.sourceIp ?? "") as Context.Context<never>,
      ),
    )
    // A frozen invocation sends nothing: a defect's report leaves before the answer (nothing to wait for otherwise).
    await ErrorBus.flushAll(LAMBDA_FLUSH_MS)
    return result
  })
}
