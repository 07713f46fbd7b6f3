import type { InvoiceStatus } from "./Model.ts"

// The invoice's life: draft → open (finalized: numbered) → paid | void | uncollectible. As Stripe allows, an
// uncollectible invoice (given up after the last dunning failure) may still be paid (the customer pays it with /pay);
// only an open invoice is voided (the contract's /void: "open invoices only"; an uncollectible one is written off
// already); paid and void are final. Nothing else moves: not back to draft, not from one
// final state to another, not to itself (a repeated transition is the caller's conflict, never a silent success).

/** Each status and the statuses it may move to. */
export const TRANSITIONS: Readonly<Record<InvoiceStatus, ReadonlyArray<InvoiceStatus>>> = {
  draft: ["open"],
  open: ["paid", "void", "uncollectible"],
  uncollectible: ["paid"],
  paid: [],
  void: [],
}

/** Whether an invoice may move from `from` to `to`. */
export const canTransition = (from: InvoiceStatus, to: InvoiceStatus): boolean => TRANSITIONS[from].includes(to)

/** Why a transition is refused, as the API's conflict detail says it; undefined when it is allowed. */
export const refusal = (from: InvoiceStatus, to: InvoiceStatus): string | undefined => {
  if (canTransition(from, to)) return undefined
  const allowed = TRANSITIONS[from]
  return allowed.length === 0
    ? `the invoice is ${from}, which is final: it cannot become ${to}`
    : `the invoice is ${from}: it can become ${allowed.join(" or ")}, not ${to}`
}

/** The statuses an invoice may be paid from (a payment attempt needs one of them). */
export const PAYABLE: ReadonlyArray<InvoiceStatus> = ["open", "uncollectible"]
