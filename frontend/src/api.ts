// Typed access to the gateway's HTTP API (SPEC §5).

export interface FileInfo {
  id: string;
  name: string;
  size: number;
  chunk_size: number;
  total_chunks: number;
  replication: number;
  created_at: string;
  checksum: string;
}

export interface Usage {
  files: number;
  bytes: number;
  stored_bytes: number;
  capacity_bytes: number;
  free_bytes: number;
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
  ) {
    super(message);
  }
}

/** The gateway's JSON error message, or a generic one. */
export async function errorMessage(response: Response): Promise<string> {
  try {
    const body = await response.json();
    return body?.error?.message ?? `${response.status} ${response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

export async function request<T>(path: string, init?: RequestInit): Promise<T> {
  const response = await fetch(path, init);
  if (!response.ok) {
    throw new ApiError(await errorMessage(response), response.status);
  }
  if (response.status === 204) {
    return undefined as T;
  }
  return (await response.json()) as T;
}

export const api = {
  files: () => request<{ files: FileInfo[] }>('/api/files?limit=1000'),
  usage: () => request<Usage>('/api/usage'),
  deleteFile: (id: string) => request<void>(`/api/files/${encodeURIComponent(id)}`, { method: 'DELETE' }),
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
