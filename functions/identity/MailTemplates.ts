import type { Mail } from "../../shared/Notifier.ts"

/** Subject and bodies of a mail; the caller adds the recipient. */
export type MailContent = Omit<Mail, "to">

/** Escapes text for HTML element content and attribute values. */
export const escapeHtml = (value: string): string =>
  value.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c)

/** A link into the app (`APP_BASE_URL`) carrying a one-time token: `link(base, "/verify-email", t)`. */
export const link = (baseUrl: string, path: string, token: string): string => {
  const url = new URL(path.replace(/^\/*/, ""), baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`)
  url.searchParams.set("token", token)
  return url.toString()
}

const layout = (title: string, paragraphs: ReadonlyArray<string>, action: { label: string; href: string }) =>
  [
    `<!doctype html><html><body style="font-family:sans-serif">`,
    `<h1>${escapeHtml(title)}</h1>`,
    ...paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`),
    `<p><a href="${escapeHtml(action.href)}">${escapeHtml(action.label)}</a></p>`,
    `<p style="color:#666">${escapeHtml(`Or paste this address into your browser: ${action.href}`)}</p>`,
    `</body></html>`,
  ].join("\n")

/** The mail asking a new user to confirm their address by following `link`. */
export const verification = (params: { readonly name: string; readonly link: string }): MailContent => {
  const intro = `Hello ${params.name},`
  const body = "Please confirm your email address by opening the link below."
  return {
    subject: "Confirm your email address",
    text: `${intro}\n\n${body}\n\n${params.link}\n\nIf you did not create an account, ignore this mail.\n`,
    html: layout("Confirm your email address", [intro, body], { label: "Confirm email", href: params.link }),
  }
}

/** The mail carrying a password reset `link`. */
export const passwordReset = (params: { readonly name: string; readonly link: string }): MailContent => {
  const intro = `Hello ${params.name},`
  const body = "Someone asked to reset the password of your account. Open the link below to choose a new one."
  return {
    subject: "Reset your password",
    text: `${intro}\n\n${body}\n\n${params.link}\n\nIf it was not you, ignore this mail; your password stays as it is.\n`,
    html: layout("Reset your password", [intro, body], { label: "Reset password", href: params.link }),
  }
}
