import { afterEach, describe, expect, it, vi } from 'vitest';
import { api, ApiError, isUnauthorized, parseRetryAfter, readError, request, shouldRetry } from './api';

afterEach(() => vi.unstubAllGlobals());

function reply(status: number, body?: unknown, headers: Record<string, string> = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

describe('api', () => {
  it('parses Retry-After', () => {
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('30')).toBe(30);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:45 GMT', now)).toBe(45);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
  it('reads the gateway error body', async () => {
    const e = await readError(reply(429, { error: { code: 'too_many_requests', message: 'slow down' } }, { 'Retry-After': '12' }));
    expect(e).toBeInstanceOf(ApiError);
    expect([e.status, e.code, e.message, e.retryAfter]).toEqual([429, 'too_many_requests', 'slow down', 12]);
    const plain = await readError(new Response('oops', { status: 502, statusText: 'Bad Gateway' }));
    expect(plain.message).toBe('502 Bad Gateway');
  });
  it('retries once, never 4xx', () => {
    expect(shouldRetry(0, new ApiError('x', 401))).toBe(false);
    expect(shouldRetry(0, new ApiError('x', 429))).toBe(false);
    expect(shouldRetry(0, new ApiError('x', 503))).toBe(true);
    expect(shouldRetry(1, new ApiError('x', 503))).toBe(false);
    expect(shouldRetry(0, new TypeError('Failed to fetch'))).toBe(true);
    expect(isUnauthorized(new ApiError('x', 401))).toBe(true);
    expect(isUnauthorized(new Error('x'))).toBe(false);
  });
  it('sends JSON with the session cookie and throws ApiError', async () => {
    const fetch = vi.fn(async (..._args: unknown[]) => reply(201, { id: 't1', label: 'ci', token: 's3cret', created_at: '2026-01-01T00:00:00Z' }));
    vi.stubGlobal('fetch', fetch);
    const t = await api.createToken('ci');
    expect(t.token).toBe('s3cret');
    const [path, init] = fetch.mock.calls[0] as [string, RequestInit];
    expect(path).toBe('/api/tokens');
    expect(init.method).toBe('POST');
    expect(init.credentials).toBe('same-origin');
    expect(JSON.parse(init.body as string)).toEqual({ label: 'ci' });
    expect((init.headers as Record<string, string>)['Content-Type']).toBe('application/json');

    fetch.mockResolvedValueOnce(reply(204));
    await expect(api.deleteUser('a b')).resolves.toBeUndefined();
    expect(fetch.mock.calls[1][0]).toBe('/admin/users/a%20b');

    fetch.mockResolvedValueOnce(reply(401, { error: { code: 'unauthorized', message: 'sign in first' } }));
    await expect(request('/api/files')).rejects.toMatchObject({ status: 401, message: 'sign in first' });
  });
});
