import { describe, expect, it } from 'vitest';
import { expiresIn, fileIcon, humanBytes, plural, relativeTime, sortFiles, speed } from './format';

describe('format', () => {
  it('human sizes', () => {
    expect(humanBytes(0)).toBe('0 B');
    expect(humanBytes(1536)).toBe('1.50 KiB');
    expect(humanBytes(50 * 1024 * 1024)).toBe('50.0 MiB');
    expect(humanBytes(-1)).toBe('—');
  });
  it('plurals', () => {
    expect(plural(1, 'file')).toBe('1 file');
    expect(plural(0, 'file')).toBe('0 files');
    expect(plural(2, 'file')).toBe('2 files');
  });
  it('relative times', () => {
    const now = Date.parse('2026-01-01T00:10:00Z');
    expect(relativeTime('2026-01-01T00:09:57Z', now)).toBe('3 s ago');
    expect(relativeTime('2026-01-01T00:00:00Z', now)).toBe('10 min ago');
    expect(relativeTime(null, now)).toBe('never');
  });
  it('speed and icons', () => {
    expect(speed(1024 * 1024, 1000)).toBe('1.00 MiB/s');
    expect(fileIcon('a.PDF')).toBe('PDF');
    expect(fileIcon('noext')).toBe('FILE');
  });
  it('sorts by each column', () => {
    const files = [
      { name: 'b', size: 1, created_at: '2026-01-02T00:00:00Z', replication: 3 },
      { name: 'A', size: 5, created_at: '2026-01-01T00:00:00Z', replication: 2 },
    ];
    expect(sortFiles(files, 'name', true).map((f) => f.name)).toEqual(['A', 'b']);
    expect(sortFiles(files, 'size', false).map((f) => f.size)).toEqual([5, 1]);
    expect(sortFiles(files, 'created_at', true).map((f) => f.name)).toEqual(['A', 'b']);
  });
  it('expiry times', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(expiresIn(null, now)).toBe('never');
    expect(expiresIn('2025-12-31T23:59:00Z', now)).toBe('expired');
    expect(expiresIn('2026-01-01T00:00:30Z', now)).toBe('in 30 s');
    expect(expiresIn('2026-01-01T00:05:00Z', now)).toBe('in 5 min');
    expect(expiresIn('2026-01-08T00:00:00Z', now)).toBe('in 7 d');
    expect(expiresIn('garbage', now)).toBe('—');
  });
});
