// `platform audit`: tail the audit log (filtered; `--follow` keeps polling for new records) and verify its hash chain.
import { setTimeout as sleep } from "node:timers/promises"
import { type components, ok, type PlatformClient } from "@platform/client"
import { type Command, InvalidArgumentError } from "commander"
import { action, type Context } from "../context.ts"
import { CliError, Exit } from "../exit.ts"
import { userId } from "../lookup.ts"
import { when } from "../output.ts"
import { limit, pastTime } from "../parse.ts"

type AuditRecord = components["schemas"]["AuditRecordEncoded"]

type TailOptions = {
  readonly action?: string
  readonly actor?: string
  readonly target?: string
  readonly since?: string
  readonly until?: string
  readonly limit?: number
  readonly follow?: boolean
  readonly interval?: number
}

type Filters = { actorId?: string; action?: string; targetId?: string; from?: string; to?: string }

// A record may be written a little after it occurred (the services hand them over through events): each poll looks
// this far back before the newest record seen, and skips the ones already shown.
const LOOK_BACK_MS = 60_000

const seconds = (value: string): number => {
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0.5 || n > 3600) throw new InvalidArgumentError("expected seconds from 0.5 to 3600")
  return n
}

const show = (ctx: Context, record: AuditRecord) => {
  if (ctx.out.json) {
    ctx.out.printJson(record, true)
    return
  }
  const { c } = ctx.out
  const outcome = record.outcome === "success" ? c.green(record.outcome) : c.red(record.outcome)
  const target = record.targetId === null ? "" : ` target=${record.targetType ?? "?"}:${record.targetId}`
  const actor = record.actorId === null ? "" : ` actor=${record.actorId}`
  const ip = record.ip === null ? "" : ` ip=${record.ip}`
  ctx.out.line(`${c.dim(when(record.occurredAt) ?? "")} ${c.bold(record.action)} ${outcome}${actor}${target}${ip}`)
}

const oldestFirst = (records: ReadonlyArray<AuditRecord>) =>
  [...records].sort((a, b) => a.occurredAt.localeCompare(b.occurredAt) || a.id.localeCompare(b.id))

/** Polls for records newer than those seen, printing each once, until the process is stopped (Ctrl+C). */
const follow = async (
  ctx: Context,
  api: PlatformClient,
  filters: Filters,
  first: ReadonlyArray<AuditRecord>,
  every: number,
) => {
  const seen = new Map(first.map((r) => [r.id, r.occurredAt]))
  // RFC 3339 times in the API's one format: they compare as strings.
  let newest = oldestFirst(first).at(-1)?.occurredAt ?? filters.from ?? ""
  for (;;) {
    await sleep(every * 1000)
    const from = newest === "" ? undefined : new Date(Date.parse(newest) - LOOK_BACK_MS).toISOString()
    const fresh: Array<AuditRecord> = []
    let cursor: string | undefined
    do {
      const query = {
        ...filters,
        ...(from === undefined ? {} : { from }),
        limit: "100",
        ...(cursor === undefined ? {} : { cursor }),
      }
      const page = await ok(api.GET("/api/v1/audit/events", { params: { query } }))
      fresh.push(...page.items.filter((r) => !seen.has(r.id)))
      cursor = page.nextCursor ?? undefined
    } while (cursor !== undefined)
    const sorted = oldestFirst(fresh)
    for (const record of sorted) {
      show(ctx, record)
      seen.set(record.id, record.occurredAt)
    }
    const latest = sorted.at(-1)?.occurredAt
    if (latest !== undefined && latest > newest) newest = latest
    // Forget what is older than any later poll will ask for.
    if (from !== undefined) for (const [id, at] of seen) if (at < from) seen.delete(id)
  }
}

export const auditCommands = (program: Command) => {
  const audit = program.command("audit").description("The audit log: tail it, verify its hash chain")

  audit
    .command("tail")
    .description("Show the latest audit records, oldest first (with --follow, keep showing new ones)")
    .option("--action <action>", "only this action (e.g. auth.login.failed)")
    .option("--actor <user>", "only records of this actor (email or id)")
    .option("--target <id>", "only records about this target id")
    .option("--since <time>", "only records at or after this time (RFC 3339, a date, or 15m, 2h, 7d ago)", pastTime)
    .option("--until <time>", "only records before this time (same forms)", pastTime)
    .option("-n, --limit <n>", "how many of the latest records to show first, 1–100 (default 20)", limit)
    .option("-f, --follow", "keep polling for new records until stopped (Ctrl+C); with --json one record per line")
    .option("--interval <seconds>", "with --follow, seconds between polls (default 2)", seconds)
    .action(
      action<TailOptions>(async (ctx, _args, options) => {
        if (options.follow === true && options.until !== undefined)
          throw new CliError(Exit.usage, "--follow and --until do not go together")
        const api = await ctx.api()
        const filters: Filters = {
          ...(options.action === undefined ? {} : { action: options.action }),
          ...(options.actor === undefined ? {} : { actorId: await userId(api, options.actor) }),
          ...(options.target === undefined ? {} : { targetId: options.target }),
          ...(options.since === undefined ? {} : { from: options.since }),
          ...(options.until === undefined ? {} : { to: options.until }),
        }
        const query = { ...filters, limit: String(options.limit ?? 20) }
        const page = await ok(api.GET("/api/v1/audit/events", { params: { query } }))
        if (ctx.out.json && options.follow !== true) {
          ctx.out.printJson(page)
          return
        }
        for (const record of oldestFirst(page.items)) show(ctx, record)
        if (options.follow === true) await follow(ctx, api, filters, page.items, options.interval ?? 2)
        else if (page.items.length === 0) ctx.out.note("(no records)")
      }),
    )

  audit
    .command("verify")
    .description("Verify the audit log's hash chain (from the last verified checkpoint, or all of it with --full)")
    .option("--full", "recompute every record from the first, not only those since the last checkpoint")
    .action(
      action<{ full?: boolean }>(async (ctx, _args, options) => {
        const api = await ctx.api()
        const query = options.full === true ? { full: "true" as const } : {}
        const answer = await ctx.out.progress("Verifying the audit log's hash chain…", () =>
          ok(api.GET("/api/v1/audit/verify", { params: { query } })),
        )
        if (ctx.out.json) ctx.out.printJson(answer)
        if (!answer.ok)
          throw new CliError(Exit.checkFailed, `the audit log's hash chain is broken at record ${answer.brokenAt}`)
        if (!ctx.out.json)
          ctx.out.line(
            `${ctx.out.c.green("ok")}: ${answer.checked} records in the chain, ${answer.rechecked} recomputed; head ${answer.head ?? "(empty)"}.`,
          )
      }),
    )
}
