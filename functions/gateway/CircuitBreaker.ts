/** Settings of a circuit breaker: consecutive failures that open it, and how long it stays open. */
export interface CircuitBreakerOptions {
  readonly failureThreshold: number
  readonly cooldownMs: number
  readonly now?: () => number
}

/** Whether a request may go to the upstream, or how long until the next probe. */
export type Admission =
  | { readonly _tag: "Allowed"; readonly probe: boolean }
  | { readonly _tag: "Rejected"; readonly retryAfterMs: number }

/** The state of a circuit, for readiness summaries and metrics. */
export type CircuitState = "closed" | "open" | "half-open"

/**
 * A per-upstream circuit breaker: closed until `failureThreshold` consecutive failures, then open (requests rejected
 * at once) for `cooldownMs`, then half-open: one probe request goes through; its success closes the circuit, its
 * failure opens it again for another cooldown.
 */
export class CircuitBreaker {
  private failures = 0
  private openedAt: number | undefined
  private probing = false
  private readonly now: () => number
  private readonly options: CircuitBreakerOptions

  constructor(options: CircuitBreakerOptions) {
    this.options = options
    this.now = options.now ?? Date.now
  }

  /** The current state. */
  get state(): CircuitState {
    if (this.openedAt === undefined) return "closed"
    return this.now() - this.openedAt >= this.options.cooldownMs ? "half-open" : "open"
  }

  /** Asks to send a request; a half-open circuit lets exactly one probe through at a time. */
  admit(): Admission {
    if (this.openedAt === undefined) return { _tag: "Allowed", probe: false }
    const waited = this.now() - this.openedAt
    if (waited < this.options.cooldownMs) return { _tag: "Rejected", retryAfterMs: this.options.cooldownMs - waited }
    if (this.probing) return { _tag: "Rejected", retryAfterMs: Math.min(1000, this.options.cooldownMs) }
    this.probing = true
    return { _tag: "Allowed", probe: true }
  }

  /** The upstream answered: the circuit closes. */
  success(): void {
    this.failures = 0
    this.openedAt = undefined
    this.probing = false
  }

  /** The upstream could not be reached or timed out: counts towards opening; a failed probe reopens at once. */
  failure(): void {
    this.failures++
    if (this.probing || this.failures >= this.options.failureThreshold) this.openedAt = this.now()
    this.probing = false
  }

  /** A request let through ended without telling anything about the upstream (e.g. the client went away). */
  release(probe: boolean): void {
    if (probe) this.probing = false
  }
}
