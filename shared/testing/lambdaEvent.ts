import type { APIGatewayProxyEventV2, Context } from "aws-lambda"

/** A real API Gateway HTTP API (payload v2) event, as Lambda delivers it. */
export const apiGatewayEvent = (method: string, rawPath: string, body?: string): APIGatewayProxyEventV2 => ({
  version: "2.0",
  routeKey: "$default",
  rawPath,
  rawQueryString: "",
  headers: {
    accept: "application/json",
    "content-type": "application/json",
    host: "abc123.execute-api.eu-west-1.amazonaws.com",
    "x-request-id": "lambda-req-1",
    ...(body ? { "content-length": String(Buffer.byteLength(body)) } : {}),
  },
  requestContext: {
    accountId: "123456789012",
    apiId: "abc123",
    domainName: "abc123.execute-api.eu-west-1.amazonaws.com",
    domainPrefix: "abc123",
    http: { method, path: rawPath, protocol: "HTTP/1.1", sourceIp: "203.0.113.9", userAgent: "curl/8" },
    requestId: "Jx1-abcdEFGH=",
    routeKey: "$default",
    stage: "$default",
    time: "25/Nov/2026:20:00:00 +0000",
    timeEpoch: 1795636800000,
  },
  ...(body !== undefined ? { body, isBase64Encoded: false } : { isBase64Encoded: false }),
})

/** A Lambda context for `functionName`. */
export const lambdaContext = (functionName: string) =>
  ({ functionName, awsRequestId: "req", getRemainingTimeInMillis: () => 30_000 }) as Context
