// Pure helpers for accounts: sign-in errors, quotas, and what the query
// cache holds when the user signs in or out (shared by both dashboards).
import type { QueryClient } from '@tanstack/react-query';
import { ApiError, type Me } from './api';
import { humanBytes } from './format';

/** The query key of `GET /api/auth/me`. Its data is `null` when nobody is
 * signed in: the dashboards then show the login page. */
export const ME_KEY = ['me'] as const;

const notMe = { predicate: (q: { queryKey: readonly unknown[] }) => q.queryKey[0] !== ME_KEY[0] };

/** The signed-in user is gone (sign-out, or a 401 from any request): stop
 * fetching and show the login page. `<AuthGate>` then calls `forgetUserData`
 * once the dashboard has unmounted (removing queries that are still observed
 * would make them fetch again). */
export function signedOut(queryClient: QueryClient) {
  void queryClient.cancelQueries(notMe);
  queryClient.setQueryData<Me | null>(ME_KEY, null);
}

/** Drops every cached answer but `me`: they belonged to the last user. */
export function forgetUserData(queryClient: QueryClient) {
  queryClient.removeQueries(notMe);
}

/** A user signed in: forget anything cached before (the dashboard mounts
 * afresh and refetches everything), then refresh `me` for `used_bytes`. */
export function signedIn(queryClient: QueryClient, me: Me) {
  forgetUserData(queryClient);
  queryClient.setQueryData<Me | null>(ME_KEY, me);
  void queryClient.invalidateQueries({ queryKey: ME_KEY });
}

/** "30 s", "2 min". */
function waitText(seconds: number): string {
  return seconds < 60 ? `${seconds} s` : `${Math.ceil(seconds / 60)} min`;
}

/** What the login form says when signing in failed. */
export function loginErrorMessage(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 429) {
      const wait = error.retryAfter !== undefined && error.retryAfter > 0 ? `in ${waitText(error.retryAfter)}` : 'in a minute';
      return `Too many sign-in attempts. Please wait and try again ${wait}.`;
    }
    if (error.status === 401) return error.message || 'Wrong username or password.';
    if (error.status >= 500) return `The gateway could not sign you in: ${error.message}`;
    return error.message;
  }
  if (error instanceof TypeError) return 'Could not reach the gateway. Check your connection and try again.';
  return error instanceof Error ? error.message : String(error);
}

/** "" below 75 %, then "warn", above 90 % "bad" (the bar's CSS class). */
export function meterLevel(pct: number): '' | 'warn' | 'bad' {
  return pct > 90 ? 'bad' : pct > 75 ? 'warn' : '';
}

/** A quota for people: 0 → "unlimited". */
export function formatQuota(quotaBytes: number): string {
  return quotaBytes > 0 ? humanBytes(quotaBytes) : 'unlimited';
}

export interface QuotaSummary {
  limited: boolean;
  /** Share of the quota used, 0–100 (0 when unlimited). */
  pct: number;
  text: string;
}

/** "1.50 MiB of 1.00 GiB quota used" or "no quota". */
export function quotaSummary(usedBytes: number, quotaBytes: number): QuotaSummary {
  if (!(quotaBytes > 0)) return { limited: false, pct: 0, text: 'no quota' };
  const pct = Math.min(100, Math.max(0, (usedBytes / quotaBytes) * 100));
  return { limited: true, pct, text: `${humanBytes(usedBytes)} of ${humanBytes(quotaBytes)} quota used` };
}

export const GIB = 1024 ** 3;

/** The quota field of the new-user form, in GiB (decimals allowed, empty or
 * 0 = unlimited) → bytes, or null when it is not a number ≥ 0. */
export function parseQuotaGiB(text: string): number | null {
  const trimmed = text.trim().replace(',', '.');
  if (trimmed === '') return 0;
  if (!/^\d*\.?\d+$|^\d+\.$/.test(trimmed)) return null;
  const gib = Number(trimmed);
  if (!Number.isFinite(gib) || gib < 0) return null;
  return Math.round(gib * GIB);
}

/** Problems with the new-user form that the browser can tell without asking
 * the gateway, or null. */
export function newUserProblem(username: string, password: string, quotaText: string): string | null {
  if (!username.trim()) return 'Enter a username.';
  if (/\s/.test(username.trim())) return 'A username cannot contain spaces.';
  if (!password) return 'Enter a password.';
  if (parseQuotaGiB(quotaText) === null) return 'The quota must be a number of GiB, 0 or more (0 = unlimited).';
  return null;
}
