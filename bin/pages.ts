// The API's lists come in pages (`?limit=&cursor=`, `{items, nextCursor}`): one page, or with `--all` every page,
// with a count on the progress indicator as they arrive.
import type { Command } from "commander"
import type { Context } from "./context.ts"
import { limit } from "./parse.ts"

export interface Page<I> {
  readonly items: ReadonlyArray<I>
  readonly nextCursor: string | null
}

/** What the list commands share: `--limit`, `--cursor`, `--all`. */
export type PageOptions = {
  readonly limit?: number
  readonly cursor?: string
  readonly all?: boolean
}

type Fetch<I> = (query: { limit: string; cursor?: string }) => Promise<Page<I>>

/** Every page from `cursor` on, 100 items a call, `what` (e.g. "users") counted on the progress indicator. */
export const everyPage = <I>(ctx: Context, what: string, fetch: Fetch<I>, cursor?: string): Promise<Page<I>> =>
  ctx.out.progress(`Fetching ${what}…`, async (update) => {
    const items: Array<I> = []
    let next: string | undefined = cursor
    do {
      const page = await fetch({ limit: "100", ...(next === undefined ? {} : { cursor: next }) })
      items.push(...page.items)
      next = page.nextCursor ?? undefined
      update(`Fetching ${what}… ${items.length}`)
    } while (next !== undefined)
    return { items, nextCursor: null }
  })

/**
 * The page the options ask for (`--limit`, default 20, from `--cursor`), or every page with `--all`. A person is told
 * when there are more (scripts read `nextCursor` from the JSON).
 */
export const listPages = async <I>(
  ctx: Context,
  what: string,
  options: PageOptions,
  fetch: Fetch<I>,
): Promise<Page<I>> => {
  if (options.all === true) return everyPage(ctx, what, fetch, options.cursor)
  const page = await fetch({
    limit: String(options.limit ?? 20),
    ...(options.cursor === undefined ? {} : { cursor: options.cursor }),
  })
  if (page.nextCursor !== null && !ctx.out.json)
    ctx.out.note(`more ${what}: --all for all of them, or --cursor ${page.nextCursor}`)
  return page
}

/** Adds `--limit`, `--cursor` and `--all` to a list command. */
export const withPageOptions = (command: Command) =>
  command
    .option("--limit <n>", "items per page, 1–100 (default 20)", limit)
    .option("--cursor <cursor>", "continue from a previous page's nextCursor")
    .option("--all", "every page (with a progress indicator on a terminal)")
