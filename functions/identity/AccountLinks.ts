/**
 * What identity's mails link to and what the pages behind those links must know, said once here (no imports: the
 * gateway, which serves the pages at the default APP_BASE_URL, reads this file too).
 */

/** The paths of the pages the verification and reset mails link to (`<APP_BASE_URL><path>?token=…`). */
export const PAGE_PATHS = {
  verifyEmail: "/verify-email",
  resetPassword: "/reset-password",
} as const

/** The public routes those pages call with the token (identity's, declared in its manifest). */
export const ENDPOINTS = {
  verifyEmail: "/api/v1/auth/verify-email",
  resetPassword: "/api/v1/auth/password-reset/confirm",
} as const

/** A password's length as identity enforces it, in code points. */
export const PASSWORD_LENGTH = { min: 8, max: 128 } as const
