// Pure formatting helpers shared by both dashboards.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 → "1.5 KiB". */
export function humanBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '—';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** 1 → "1 file", 2 → "2 files" (a plural with a plain "s"). */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** "3 s ago", "5 min ago", "2 h ago", "4 d ago" relative to `now`. */
export function relativeTime(iso: string | null, now: number = Date.now()): string {
  if (!iso) return 'never';
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return '—';
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** Transfer speed from bytes and milliseconds: "12.0 MiB/s". */
export function speed(bytes: number, ms: number): string {
  if (ms <= 0) return '—';
  return `${humanBytes((bytes * 1000) / ms)}/s`;
}

export type SortKey = 'name' | 'size' | 'created_at' | 'replication';

/** Sorts files by a column; names compare case-insensitively. */
export function sortFiles<T extends { name: string; size: number; created_at: string; replication: number }>(
  files: T[],
  key: SortKey,
  ascending: boolean,
): T[] {
  const sorted = [...files].sort((a, b) => {
    let c: number;
    if (key === 'name') c = a.name.localeCompare(b.name, undefined, { sensitivity: 'base' });
    else if (key === 'created_at') c = Date.parse(a.created_at) - Date.parse(b.created_at);
    else c = a[key] - b[key];
    return c;
  });
  return ascending ? sorted : sorted.reverse();
}

/** A short type label shown as the file's icon, by extension (no emoji
 * font needed). */
export function fileIcon(name: string): string {
  const ext = name.includes('.') ? name.split('.').pop()!.toLowerCase() : '';
  if (['png', 'jpg', 'jpeg', 'gif', 'webp', 'svg'].includes(ext)) return 'IMG';
  if (['mp4', 'mov', 'mkv', 'webm'].includes(ext)) return 'VID';
  if (['mp3', 'wav', 'flac', 'ogg'].includes(ext)) return 'AUD';
  if (['zip', 'gz', 'tar', 'xz', '7z'].includes(ext)) return 'ZIP';
  if (['pdf'].includes(ext)) return 'PDF';
  if (['txt', 'md', 'csv', 'json', 'log'].includes(ext)) return 'TXT';
  return 'FILE';
}

/** When something expires: "never" (null), "expired", or "in 5 min". */
export function expiresIn(iso: string | null, now: number = Date.now()): string {
  if (!iso) return 'never';
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return '—';
  const seconds = Math.round((at - now) / 1000);
  if (seconds <= 0) return 'expired';
  if (seconds < 60) return `in ${seconds} s`;
  if (seconds < 3600) return `in ${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `in ${Math.floor(seconds / 3600)} h`;
  return `in ${Math.floor(seconds / 86400)} d`;
}
