import { describe, expect, it, vi } from 'vitest';
import { confirmThen } from './components';

describe('asking before a destructive action', () => {
  it('acts only on yes, and asks the question given', () => {
    const action = vi.fn();
    const yes = vi.fn(() => true);
    expect(confirmThen('Delete “notes.txt”? This cannot be undone.', action, yes)).toBe(true);
    expect(yes).toHaveBeenCalledWith('Delete “notes.txt”? This cannot be undone.');
    expect(action).toHaveBeenCalledTimes(1);
    expect(confirmThen('Revoke the token “cli”?', action, () => false)).toBe(false);
    expect(action).toHaveBeenCalledTimes(1);
  });
  it('asks with window.confirm by default', () => {
    const confirm = vi.fn(() => false);
    vi.stubGlobal('window', { confirm });
    try {
      const action = vi.fn();
      expect(confirmThen('Decommission node-1?', action)).toBe(false);
      expect(confirm).toHaveBeenCalledWith('Decommission node-1?');
      expect(action).not.toHaveBeenCalled();
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
