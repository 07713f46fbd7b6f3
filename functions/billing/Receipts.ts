// Receipts: the mail a customer gets when an invoice of theirs is paid, queued through the kernel's Notifier in the
// transaction that records the payment (sent only if it commits, delivered and retried by the MailSender). Billing
// knows its customers by user id only; where their address comes from is the ReceiptRecipients port.
import { Context, Effect, Layer, Option } from "effect"
import * as GrpcDeferred from "../../shared/GrpcDeferred.ts"
import type { Mail } from "../../shared/Notifier.ts"
import { type Currency, format } from "./Money.ts"

/** Where a customer's mail address comes from (identity owns it). */
export class ReceiptRecipients extends Context.Service<
  ReceiptRecipients,
  {
    /** The customer's address, none when unknown; a failure means it could not be asked (the receipt is skipped). */
    emailOf(customerId: string): Effect.Effect<Option.Option<string>, unknown>
  }
>()("billing/ReceiptRecipients") {
  /** No receipts (no address is known). */
  static readonly none = Layer.succeed(ReceiptRecipients, { emailOf: () => Effect.succeed(Option.none()) })

  /**
   * Addresses from identity (its gRPC `GetUser`, as billing's service identity: billing must list identity in its
   * manifest's `dependsOn` so that identity accepts it as a caller). A customer identity does not know (a deleted
   * account) gets no receipt; identity unreachable is a failure (the payment is recorded, the receipt skipped).
   */
  static readonly identity = (options: { readonly address: string }) =>
    Layer.effect(
      ReceiptRecipients,
      Effect.gen(function* () {
        const call = yield* GrpcDeferred.lazyClient(
          () => import("../../proto/gen/identity/v1/identity.ts").then((proto) => proto.IdentityServiceClient),
          // A receipt must not hold a payment up for long: one short retry, then the receipt is skipped.
          { address: options.address, timeoutMs: 1_000, retries: 1 },
        )
        return ReceiptRecipients.of({
          emailOf: (customerId: string) =>
            call("getUser", { id: customerId }, { idempotent: true }).pipe(
              Effect.map((response) => Option.map(Option.fromUndefinedOr(response.user), (user) => user.email)),
              Effect.catch((error) =>
                error._tag === "NotFound" ? Effect.succeed(Option.none<string>()) : Effect.fail(error),
              ),
            ),
        })
      }),
    )

  /** Addresses from a fixed table (tests, development). */
  static readonly local = (emails: Readonly<Record<string, string>>) =>
    Layer.succeed(ReceiptRecipients, {
      emailOf: (customerId: string) =>
        Effect.succeed(Object.hasOwn(emails, customerId) ? Option.some(emails[customerId]!) : Option.none()),
    })
}

/** What a receipt says about the paid invoice. */
export interface PaidInvoice {
  readonly number: string
  readonly total: number
  readonly currency: string
  readonly periodStart: Date
  readonly periodEnd: Date
  readonly paidAt: Date
  readonly lines: ReadonlyArray<{ readonly description: string; readonly amount: number; readonly quantity: number }>
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!)

const day = (date: Date) => date.toISOString().slice(0, 10)

/** The receipt of a paid invoice, to `to`. */
export const receiptMail = (to: string, invoice: PaidInvoice): Mail => {
  const money = (amount: number) => `${format(amount, invoice.currency as Currency)} ${invoice.currency}`
  const lines = invoice.lines.map(
    (line) => `${line.description}${line.quantity === 1 ? "" : ` × ${line.quantity}`}: ${money(line.amount)}`,
  )
  const summary = `Invoice ${invoice.number}, ${day(invoice.periodStart)} to ${day(invoice.periodEnd)}`
  return {
    to,
    subject: `Receipt for invoice ${invoice.number}: ${money(invoice.total)} paid`,
    text: [
      `Thank you: ${money(invoice.total)} was paid on ${day(invoice.paidAt)}.`,
      "",
      summary,
      ...lines,
      `Total: ${money(invoice.total)}`,
    ].join("\n"),
    html: [
      `<p>Thank you: <strong>${escapeHtml(money(invoice.total))}</strong> was paid on ${day(invoice.paidAt)}.</p>`,
      `<p>${escapeHtml(summary)}</p>`,
      `<ul>${lines.map((line) => `<li>${escapeHtml(line)}</li>`).join("")}</ul>`,
      `<p>Total: ${escapeHtml(money(invoice.total))}</p>`,
    ].join("\n"),
  }
}
