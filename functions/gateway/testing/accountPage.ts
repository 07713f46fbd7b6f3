import vm from "node:vm"

/** One element of the page as its script sees it. */
export interface PageElement {
  readonly id: string
  textContent: string
  className: string
  hidden: boolean
  value: string
  readonly listeners: Map<string, (event: { preventDefault(): void }) => void>
  addEventListener(type: string, listener: (event: { preventDefault(): void }) => void): void
}

/** A page of the gateway opened from a mail's link, its script running against the platform. */
export interface OpenedPage {
  readonly html: string
  /** The requests the script made: path and JSON body. */
  readonly requests: Array<{ readonly path: string; readonly body: unknown }>
  /** The query the address bar shows once the script ran (the token is taken out). */
  readonly search: () => string
  readonly element: (id: string) => PageElement
  /** Waits until the status line says something final (not "pending"). */
  settled(): Promise<{ readonly text: string; readonly kind: string }>
  /** Types the passwords and submits the reset form. */
  submitPassword(password: string, repeated?: string): void
}

/**
 * Follows a mail's `link` on the gateway at `base` (the link's path and query; its origin is the configured
 * APP_BASE_URL) and runs the page's own script from the gateway, in a VM with the few DOM parts it uses (no browser
 * here); its `fetch` goes to the gateway. What it shows and what it sent are there to read.
 */
export const openPage = async (base: string, link: string): Promise<OpenedPage> => {
  const followed = new URL(link)
  const res = await fetch(new URL(followed.pathname + followed.search, base))
  if (res.status !== 200) throw new Error(`${followed.pathname} answered ${res.status}`)
  const html = await res.text()
  const src = /<script src="([^"]+)"/.exec(html)?.[1]
  if (src === undefined) throw new Error("the page loads no script")
  const script = await (await fetch(new URL(src, base))).text()

  const elements = new Map<string, PageElement>()
  for (const match of html.matchAll(/<[a-z]+ ([^>]*)id="([^"]+)"([^>]*)>/g)) {
    const attributes = `${match[1]} ${match[3]}`
    elements.set(match[2]!, {
      id: match[2]!,
      textContent: "",
      className: "",
      hidden: /(^|\s)hidden(\s|$)/.test(attributes),
      value: "",
      listeners: new Map(),
      addEventListener(type, listener) {
        this.listeners.set(type, listener)
      },
    })
  }
  const element = (id: string) => {
    const found = elements.get(id)
    if (found === undefined) throw new Error(`no element #${id}`)
    return found
  }
  const location = { pathname: followed.pathname, search: followed.search }
  const requests: Array<{ path: string; body: unknown }> = []
  const sandbox = {
    document: {
      body: { dataset: { page: /data-page="([^"]+)"/.exec(html)?.[1] } },
      getElementById: (id: string) => elements.get(id) ?? null,
    },
    location,
    history: {
      replaceState: (_state: unknown, _title: string, url: string) => {
        const next = new URL(url, "http://page.invalid")
        location.pathname = next.pathname
        location.search = next.search
      },
    },
    URLSearchParams,
    fetch: (path: string, init: RequestInit) => {
      requests.push({ path, body: JSON.parse(String(init.body)) })
      return fetch(new URL(path, base), init)
    },
  }
  vm.runInNewContext(script, sandbox)

  return {
    html,
    requests,
    search: () => location.search,
    element,
    settled: async () => {
      const status = element("status")
      const deadline = Date.now() + 10_000
      while (status.className === "pending" || status.className === "") {
        if (Date.now() > deadline) throw new Error(`the page did not settle: ${status.textContent}`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      return { text: status.textContent, kind: status.className }
    },
    submitPassword: (password, repeated = password) => {
      element("password").value = password
      element("confirm").value = repeated
      element("status").className = ""
      element("reset").listeners.get("submit")?.({ preventDefault: () => {} })
    },
  }
}
