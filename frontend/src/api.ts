// Typed access to the gateway's HTTP API (SPEC §5).

export interface FileInfo {
  id: string;
  name: string;
  size: number;
  chunk_size: number;
  total_chunks: number;
  replication: number;
  created_at: string;
  /** Lowercase hex, computed by `checksum_algorithm`. */
  checksum: string;
  /** `blake3`; `sha256` for files uploaded before Tessera used BLAKE3. */
  checksum_algorithm: string;
}

export interface Usage {
  /** The signed-in user's own files, bytes and stored bytes. */
  files: number;
  bytes: number;
  stored_bytes: number;
  /** The user's quota; 0 means unlimited. */
  quota_bytes: number;
  /** Cluster-wide. */
  capacity_bytes: number;
  free_bytes: number;
}

export type Role = 'admin' | 'user';

/** `GET /api/auth/me`: the signed-in user. */
export interface Me {
  username: string;
  role: Role;
  /** 0 means unlimited. */
  quota_bytes: number;
  used_bytes: number;
}

/** `POST /api/auth/login`. */
export interface LoginResponse {
  user: { username: string; role: Role; quota_bytes: number };
  token: string;
}

export interface ApiToken {
  id: string;
  label: string;
  kind: 'session' | 'api';
  created_at: string;
  expires_at: string | null;
  /** Optional: the session this browser uses. */
  current?: boolean;
}

/** `POST /api/tokens`: the secret is in this answer only. */
export interface CreatedToken {
  id: string;
  label: string;
  token: string;
  created_at: string;
}

export interface UserAccount {
  username: string;
  role: Role;
  quota_bytes: number;
  used_bytes: number;
  files: number;
  created_at: string;
}

export interface NewUser {
  username: string;
  password: string;
  role: Role;
  quota_bytes: number;
}

export interface NodeInfo {
  node_id: string;
  host: string;
  grpc_port: number;
  capacity_bytes: number;
  free_bytes: number;
  health: string;
  last_seen: string | null;
  mac: string;
  chunks: number;
}

export interface ControllerInfo {
  id: number;
  addr: string;
  role: string;
  term: number;
  last_log_index: number;
}

export interface Counts {
  pending: number;
  running: number;
  completed: number;
  failed: number;
}

export interface Summary {
  nodes: Record<string, number>;
  chunks: { total: number; fully_replicated: number; under_replicated: number; lost: number };
  rebalances: Counts;
  controllers: ControllerInfo[];
  leader: number | null;
  capacity_bytes: number;
  used_bytes: number;
  files: number;
}

export interface Task {
  id: string;
  kind: string;
  chunk_id: string;
  from: string;
  to: string;
  state: string;
  created_at: string | null;
  finished_at: string | null;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    /** The gateway's error code, e.g. "unauthorized". */
    readonly code?: string,
    /** Seconds from a `Retry-After` header (429, 503). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** True for an `ApiError` with one of the given statuses. */
export function hasStatus(error: unknown, ...statuses: number[]): error is ApiError {
  return error instanceof ApiError && statuses.includes(error.status);
}

/** The session is missing or expired: the dashboards show the login page. */
export const isUnauthorized = (error: unknown): error is ApiError => hasStatus(error, 401);

/** Query retry policy: once, but never for answers that a retry cannot change
 * (401, 403, 404, 429 and other 4xx). */
export function shouldRetry(failureCount: number, error: unknown): boolean {
  if (error instanceof ApiError && error.status >= 400 && error.status < 500) return false;
  return failureCount < 1;
}

/** Seconds to wait from a `Retry-After` value (delay seconds or an HTTP date). */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

/** The gateway's JSON error, `{"error":{"code","message"}}`, or a generic one. */
export async function readError(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`.trim();
  let code: string | undefined;
  try {
    const body = await response.json();
    if (typeof body?.error?.message === 'string') message = body.error.message;
    if (typeof body?.error?.code === 'string') code = body.error.code;
  } catch {
    /* not JSON */
  }
  return new ApiError(message, response.status, code, parseRetryAfter(response.headers.get('Retry-After')));
}

/** The gateway's JSON error message, or a generic one. */
export async function errorMessage(response: Response): Promise<string> {
  return (await readError(response)).message;
}

export async function request<T>(path: string, init?: RequestInit): Promise<T> {
  // Same-origin requests carry the session cookie.
  const response = await fetch(path, { credentials: 'same-origin', ...init });
  if (!response.ok) {
    throw await readError(response);
  }
  if (response.status === 204) {
    return undefined as T;
  }
  return (await response.json()) as T;
}

const post = <T>(path: string, body?: unknown) =>
  request<T>(path, {
    method: 'POST',
    headers: body === undefined ? undefined : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

const del = (path: string) => request<void>(path, { method: 'DELETE' });

export const api = {
  // Accounts.
  me: () => request<Me>('/api/auth/me'),
  login: (username: string, password: string) => post<LoginResponse>('/api/auth/login', { username, password }),
  logout: () => post<void>('/api/auth/logout'),
  tokens: () => request<{ tokens: ApiToken[] }>('/api/tokens'),
  createToken: (label: string) => post<CreatedToken>('/api/tokens', { label }),
  revokeToken: (id: string) => del(`/api/tokens/${encodeURIComponent(id)}`),
  users: () => request<{ users: UserAccount[] }>('/admin/users'),
  createUser: (user: NewUser) => post<UserAccount>('/admin/users', user),
  deleteUser: (username: string) => del(`/admin/users/${encodeURIComponent(username)}`),
  // Files.
  files: () => request<{ files: FileInfo[] }>('/api/files?limit=1000'),
  usage: () => request<Usage>('/api/usage'),
  deleteFile: (id: string) => del(`/api/files/${encodeURIComponent(id)}`),
  // Cluster (admin).
  summary: () => request<Summary>('/admin/summary'),
  nodes: () => request<{ nodes: NodeInfo[] }>('/admin/nodes'),
  rebalances: () => request<{ counts: Counts; tasks: Task[] }>('/admin/rebalances'),
  nodeAction: (id: string, action: 'fail' | 'recover' | 'decommission') =>
    action === 'decommission'
      ? request<unknown>(`/admin/nodes/${encodeURIComponent(id)}`, { method: 'DELETE' })
      : request<unknown>(`/admin/nodes/${encodeURIComponent(id)}/${action}`, { method: 'POST' }),
  addNode: () => request<{ started: boolean; node_id?: string; message?: string }>('/admin/nodes', { method: 'POST' }),
  rebalanceNow: () => request<unknown>('/admin/rebalances', { method: 'POST' }),
};
