// The error bus against a real HTTP capture server speaking Sentry's envelope protocol (shared/testing/sentryCapture.ts):
// what an event carries, what never leaves the process, the per-fingerprint limit, the endpoint's own refusals, and the
// configuration's checks. The capture points (HTTP, gRPC, jobs, events, the process) are tested in ErrorCapture.test.ts.
import {
  Cause,
  ConfigProvider,
  Context,
  Effect,
  Exit,
  Layer,
  Metric,
  Option,
  Redacted,
  Scope,
  type Tracer,
} from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Cfg from "./Config.ts"
import * as ErrorBus from "./ErrorBus.ts"
import { RequestId } from "./RequestContext.ts"
import { type SentryCapture, startSentryCapture } from "./testing/sentryCapture.ts"

let capture: SentryCapture
beforeAll(async () => {
  capture = await startSentryCapture()
})
afterAll(() => capture?.close())

const optionsFor = (overrides: Partial<ErrorBus.ErrorBusOptions> = {}): ErrorBus.ErrorBusOptions => ({
  service: "ledger",
  release: "ledger@1.2.3",
  environment: "test",
  dsn: Option.some(Redacted.make(capture.dsn)),
  sampleRate: 1,
  perMinute: 10,
  keepRecent: true,
  flushTimeoutMs: 10_000,
  ...overrides,
})

// Builds a bus, hands it to `use`, then closes it (which waits for the reports in flight).
const withBus = async (options: ErrorBus.ErrorBusOptions, use: (bus: ErrorBus.ErrorBus) => void | Promise<void>) => {
  const scope = Scope.makeUnsafe()
  const context = await Effect.runPromise(Layer.buildWithScope(ErrorBus.layer(options), scope))
  try {
    await use(Context.get(context, ErrorBus.ErrorBus))
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

// Only the envelopes that arrived during `run`.
const arriving = async (run: () => Promise<void>) => {
  const before = capture.envelopes.length
  await run()
  return capture.envelopes.slice(before)
}

// How many reports were dropped for `reason` so far (error_reports_dropped_total).
const droppedFor = (reason: string) =>
  Effect.runPromise(
    Effect.map(Metric.snapshot, (snapshots) =>
      snapshots
        .filter((s) => s.id === "error_reports_dropped_total" && s.attributes?.reason === reason)
        .reduce((n, s) => n + Number((s.state as { count: number | bigint }).count), 0),
    ),
  )

const EMAIL = "ada.lovelace@example.com"
const JWT = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjMiLCJzaWQiOiJhYmMifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
const REFRESH = "Qm9vbS1ib29tLXRoaXMtaXMtYS1yZWZyZXNoLXRva2VuLTI1Ng"

describe("ErrorBus", () => {
  it("sends a defect as one Sentry envelope: type, route, request id, trace and span ids, release, no personal data", async () => {
    let span: Tracer.Span | undefined
    const arrived = await arriving(() =>
      withBus(optionsFor(), (bus) =>
        Effect.runPromise(
          Effect.gen(function* () {
            span = yield* Effect.currentSpan
            const inner = new Error(`upstream said: Bearer ${REFRESH}`)
            const defect = new TypeError(`no account for ${EMAIL} with ${JWT} (password=hunter2)`, { cause: inner })
            yield* bus.capture({ cause: Cause.die(defect), origin: "http", route: "/api/v1/ledger/:id" })
          }).pipe(Effect.withSpan("test.request"), Effect.provideService(RequestId, "req-123")),
        ),
      ),
    )
    expect(arrived).toHaveLength(1)
    const [envelope] = arrived
    expect(envelope!.contentType).toBe("application/x-sentry-envelope")
    expect(envelope!.query.get("sentry_version")).toBe("7")
    expect(envelope!.items.map((item) => item.header.type)).toEqual(["event"])
    const event = envelope!.items[0]!.payload as ReturnType<SentryCapture["events"]>[number]
    expect(envelope!.header.event_id).toBe(event.event_id)
    expect(event).toMatchObject({
      level: "error",
      release: "ledger@1.2.3",
      environment: "test",
      transaction: "/api/v1/ledger/:id",
      fingerprint: ["TypeError", "/api/v1/ledger/:id"],
      tags: {
        service: "ledger",
        origin: "http",
        route: "/api/v1/ledger/:id",
        request_id: "req-123",
        trace_id: span!.traceId,
        span_id: span!.spanId,
      },
      contexts: { trace: { trace_id: span!.traceId, span_id: span!.spanId } },
    })
    // The chain, innermost first, each scrubbed; frames of this file are the application's.
    const values = event.exception.values
    expect(values.map((v) => v.type)).toEqual(["Error", "TypeError"])
    expect(values[1]!.value).toBe("no account for [email] with [jwt] (password=[redacted])")
    expect(values[0]!.value).toBe("upstream said: Bearer [redacted]")
    const frames = values[1]!.stacktrace!.frames
    expect(frames.at(-1)).toMatchObject({ filename: "shared/ErrorBus.test.ts", in_app: true })
    for (const secret of [EMAIL, JWT, REFRESH, "hunter2"]) expect(envelope!.raw).not.toContain(secret)
  })

  it("sends at most the limit per fingerprint (defect type and route) a minute, counts the rest, others still go", async () => {
    const droppedBefore = await droppedFor("rate_limited")
    const arrived = await arriving(() =>
      withBus(optionsFor({ perMinute: 5 }), (bus) => {
        for (let i = 0; i < 100; i++) {
          bus.captureNow({ cause: Cause.die(new RangeError(`row ${i}`)), origin: "job", route: "job:reindex" }, {})
        }
        bus.captureNow({ cause: Cause.die(new RangeError("other")), origin: "job", route: "job:compact" }, {})
      }),
    )
    const events = arrived.flatMap((e) => e.items.map((i) => i.payload as { transaction: string }))
    const reindex = events.filter((e) => e.transaction === "job:reindex")
    expect(reindex.length).toBeGreaterThan(0)
    expect(reindex.length).toBeLessThanOrEqual(5)
    // Every one not sent is counted as dropped by the limit.
    expect((await droppedFor("rate_limited")) - droppedBefore).toBe(100 - reindex.length)
    expect(events.filter((e) => e.transaction === "job:compact")).toHaveLength(1)
  })

  it("reports nothing for an interruption alone, nor with a sample rate of 0", async () => {
    const arrived = await arriving(async () => {
      await withBus(optionsFor(), (bus) =>
        bus.captureNow({ cause: Cause.interrupt(1), origin: "grpc", route: "x.v1.X/Y" }, {}),
      )
      await withBus(optionsFor({ sampleRate: 0 }), (bus) =>
        bus.captureNow({ cause: Cause.die(new Error("sampled")), origin: "grpc", route: "x.v1.X/Y" }, {}),
      )
    })
    expect(arrived).toEqual([])
  })

  it("keeps to the endpoint's 429 (Retry-After) and never fails a capture when the endpoint refuses", async () => {
    capture.answerWith(429, { "retry-after": "60" })
    try {
      const arrived = await arriving(() =>
        withBus(optionsFor(), async (bus) => {
          bus.captureNow({ cause: Cause.die(new Error("first")), origin: "event", route: "event:a" }, {})
          await bus.flush(10_000)
          // Held back by the endpoint's rate limit (@sentry/core's transport): not sent, counted as dropped.
          bus.captureNow({ cause: Cause.die(new Error("second")), origin: "event", route: "event:b" }, {})
        }),
      )
      expect(arrived).toHaveLength(1)
      expect(arrived[0]!.raw).toContain("first")
    } finally {
      capture.answerWith(200)
    }
  })

  it("keeps the recent events newest first for the development listing, and none when told not to", async () => {
    await withBus(optionsFor({ dsn: Option.none() }), (bus) => {
      bus.captureNow({ cause: Cause.fail(new Error("one")), origin: "http", route: "/a" }, { requestId: "r1" })
      bus.captureNow({ cause: Cause.fail(new Error("two")), origin: "http", route: "/b" }, { requestId: "r2" })
      expect(bus.recent().map((e) => e.tags.request_id)).toEqual(["r2", "r1"])
      expect(bus.recent(1)).toHaveLength(1)
    })
    await withBus(optionsFor({ dsn: Option.none(), keepRecent: false }), (bus) => {
      bus.captureNow({ cause: Cause.die(new Error("one")), origin: "http", route: "/a" }, {})
      expect(bus.recent()).toEqual([])
    })
  })
})

describe("scrub", () => {
  it.each([
    ["mail to ada@example.com bounced", "mail to [email] bounced"],
    [`token ${JWT} expired`, "token [jwt] expired"],
    ["Authorization: Bearer abc.def-ghi", "Authorization: [redacted] [redacted]"],
    ['{"email":"x@y.io","password":"p4ss w"}', '{"email":"[email]","password":"[redacted]"}'],
    ["GET /reset?token=abc123&next=/", "GET /reset?token=[redacted]&next=/"],
    ["cookie: sid=abc; theme=dark", "cookie: [redacted]"],
    ["postgres://app:s3cret@db:5432/app refused", "postgres://[redacted]@db:5432/app refused"],
    [`refresh ${REFRESH} reused`, "refresh [token] reused"],
    ["user 0195a0a0-0000-7000-8000-000000000000 not found", "user 0195a0a0-0000-7000-8000-000000000000 not found"],
  ])("%s", (text, scrubbed) => {
    expect(ErrorBus.scrub(text)).toBe(scrubbed)
  })
})

describe("framesOf", () => {
  it("reads a V8 stack, oldest frame first, without positionless frames", () => {
    const stack = [
      "Error: boom",
      `    at handler (${process.cwd()}/functions/x/Http.ts:10:5)`,
      "    at async Promise.all (index 0)",
      `    at file://${process.cwd()}/node_modules/effect/dist/Effect.js:1:2`,
      "    at node:internal/process/task_queues:105:5",
    ].join("\n")
    expect(ErrorBus.framesOf(stack)).toEqual([
      { filename: "node:internal/process/task_queues", lineno: 105, colno: 5, in_app: false },
      { filename: "node_modules/effect/dist/Effect.js", lineno: 1, colno: 2, in_app: false },
      { function: "handler", filename: "functions/x/Http.ts", lineno: 10, colno: 5, in_app: true },
    ])
  })
})

describe("the error bus's configuration", () => {
  const load = (env: Record<string, string>) =>
    Effect.runPromise(
      Effect.exit(
        Cfg.load(Cfg.base({ httpPort: 1 })).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))),
      ),
    )

  it("defaults to no DSN, a sample rate of 1 and 10 reports a minute per fingerprint", async () => {
    const exit = await load({})
    expect(Exit.isSuccess(exit) && exit.value).toMatchObject({
      sentryDsn: Option.none(),
      sentrySampleRate: 1,
      errorReportsPerMinute: 10,
    })
  })

  it("refuses a malformed DSN, a sample rate outside 0..1 and a limit of 0 at start, naming each, echoing none", async () => {
    const exit = await load({
      SENTRY_DSN: "https://example.com/secret-value",
      SENTRY_SAMPLE_RATE: "2",
      ERROR_REPORTS_PER_MINUTE: "0",
    })
    expect(Exit.isFailure(exit)).toBe(true)
    const text = Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""
    expect(text).toContain("SENTRY_DSN")
    expect(text).toContain("SENTRY_SAMPLE_RATE")
    expect(text).toContain("ERROR_REPORTS_PER_MINUTE")
    expect(text).not.toContain("secret-value")
  })

  it("takes an empty DSN (a deploy target's unset optional secret) as none", async () => {
    const exit = await load({ SENTRY_DSN: "" })
    expect(Exit.isSuccess(exit) && exit.value.sentryDsn).toEqual(Option.none())
  })

  it("accepts a Sentry or GlitchTip DSN and keeps it redacted", async () => {
    const exit = await load({ SENTRY_DSN: "https://abc123@glitchtip.example.com/7" })
    const dsn = Exit.isSuccess(exit) ? exit.value.sentryDsn : Option.none()
    expect(Option.isSome(dsn) && Redacted.value(dsn.value)).toBe("https://abc123@glitchtip.example.com/7")
    expect(String(Option.getOrUndefined(dsn))).not.toContain("abc123")
  })
})
