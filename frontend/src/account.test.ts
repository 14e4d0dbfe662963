import { describe, expect, it } from 'vitest';
import { QueryClient } from '@tanstack/react-query';
import { ApiError } from './api';
import { forgetUserData, formatQuota, GIB, loginErrorMessage, ME_KEY, meterLevel, newUserProblem, parseQuotaGiB, quotaSummary, signedIn, signedOut } from './account';

describe('login errors', () => {
  it('shows the gateway message for wrong credentials', () => {
    expect(loginErrorMessage(new ApiError('invalid username or password', 401))).toBe('invalid username or password');
    expect(loginErrorMessage(new ApiError('', 401))).toBe('Wrong username or password.');
  });
  it('says clearly when there were too many attempts', () => {
    expect(loginErrorMessage(new ApiError('rate limited', 429, 'too_many_requests', 30))).toBe(
      'Too many sign-in attempts. Please wait and try again in 30 s.',
    );
    expect(loginErrorMessage(new ApiError('rate limited', 429, undefined, 90))).toContain('in 2 min');
    expect(loginErrorMessage(new ApiError('rate limited', 429))).toBe('Too many sign-in attempts. Please wait and try again in a minute.');
  });
  it('names network and server failures', () => {
    expect(loginErrorMessage(new TypeError('Failed to fetch'))).toMatch(/Could not reach the gateway/);
    expect(loginErrorMessage(new ApiError('no controller leader', 503))).toBe('The gateway could not sign you in: no controller leader');
    expect(loginErrorMessage(new ApiError('username is required', 400))).toBe('username is required');
  });
});

describe('quotas', () => {
  it('summarises used of quota, or no quota', () => {
    expect(quotaSummary(512 * 1024 ** 2, GIB)).toEqual({ limited: true, pct: 50, text: '512 MiB of 1.00 GiB quota used' });
    expect(quotaSummary(3 * GIB, GIB).pct).toBe(100);
    expect(quotaSummary(123, 0)).toEqual({ limited: false, pct: 0, text: 'no quota' });
    expect(formatQuota(0)).toBe('unlimited');
    expect(formatQuota(2 * GIB)).toBe('2.00 GiB');
  });
  it('levels the bar', () => {
    expect(meterLevel(10)).toBe('');
    expect(meterLevel(80)).toBe('warn');
    expect(meterLevel(95)).toBe('bad');
  });
  it('reads the quota field in GiB', () => {
    expect(parseQuotaGiB('0')).toBe(0);
    expect(parseQuotaGiB('')).toBe(0);
    expect(parseQuotaGiB(' 2 ')).toBe(2 * GIB);
    expect(parseQuotaGiB('0.5')).toBe(GIB / 2);
    expect(parseQuotaGiB('1,5')).toBe(1.5 * GIB);
    expect(parseQuotaGiB('.25')).toBe(GIB / 4);
    expect(parseQuotaGiB('-1')).toBeNull();
    expect(parseQuotaGiB('1e3')).toBeNull();
    expect(parseQuotaGiB('lots')).toBeNull();
  });
  it('checks the new-user form', () => {
    expect(newUserProblem('alice', 'pw', '1')).toBeNull();
    expect(newUserProblem(' ', 'pw', '1')).toBe('Enter a username.');
    expect(newUserProblem('al ice', 'pw', '1')).toMatch(/spaces/);
    expect(newUserProblem('alice', '', '1')).toBe('Enter a password.');
    expect(newUserProblem('alice', 'pw', '-2')).toMatch(/quota/);
  });
});

describe('the query cache across sign-in and sign-out', () => {
  const alice = { username: 'alice', role: 'user' as const, quota_bytes: 0, used_bytes: 0 };
  it('sign-out leaves me = null, then everything else is forgotten', () => {
    const client = new QueryClient();
    client.setQueryData(ME_KEY, alice);
    client.setQueryData(['files'], { files: [{ id: 'x' }] });
    client.setQueryData(['usage'], { files: 1 });
    signedOut(client);
    expect(client.getQueryData(ME_KEY)).toBeNull();
    forgetUserData(client);
    expect(client.getQueryData(['files'])).toBeUndefined();
    expect(client.getQueryCache().getAll().map((q) => q.queryKey)).toEqual([['me']]);
  });
  it('sign-in drops the previous answers and sets me', () => {
    const client = new QueryClient({ defaultOptions: { queries: { queryFn: () => new Promise(() => {}) } } });
    client.setQueryData(ME_KEY, null);
    client.setQueryData(['tokens'], { tokens: [] });
    signedIn(client, alice);
    expect(client.getQueryData(ME_KEY)).toEqual(alice);
    expect(client.getQueryData(['tokens'])).toBeUndefined();
  });
});
