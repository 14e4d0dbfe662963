//! `Range: bytes=...` (RFC 9110 §14) for one range, and which chunks cover it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable Range header: send everything (200).
    Full,
    /// Bytes `start..=end` (206).
    Partial { start: u64, end: u64 },
    /// A single range that lies outside the file (416).
    Unsatisfiable,
}

/// Interprets a Range header for a file of `size` bytes. Malformed headers
/// and multi-range requests are ignored (the whole file is sent), as
/// RFC 9110 allows.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (first.is_empty(), last.is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => match parse(last) {
            None => RangeRequest::Full,
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if size == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Partial { start: size.saturating_sub(n), end: size - 1 },
        },
        // bytes=a-
        (false, true) => match parse(first) {
            None => RangeRequest::Full,
            Some(a) if a >= size => RangeRequest::Unsatisfiable,
            Some(a) => RangeRequest::Partial { start: a, end: size - 1 },
        },
        // bytes=a-b
        (false, false) => match (parse(first), parse(last)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= size {
                    RangeRequest::Unsatisfiable
                } else {
                    RangeRequest::Partial { start: a, end: b.min(size - 1) }
                }
            }
            _ => RangeRequest::Full,
        },
        (true, true) => RangeRequest::Full,
    }
}

/// The chunks holding bytes `start..=end`, each with the byte range to take
/// from it: `(chunk index, offset in chunk, length)`.
pub fn chunk_spans(start: u64, end: u64, chunk_size: u64) -> Vec<(u32, u64, u64)> {
    if chunk_size == 0 || end < start {
        return Vec::new();
    }
    let first = start / chunk_size;
    let last = end / chunk_size;
    (first..=last)
        .map(|i| {
            let chunk_start = i * chunk_size;
            let from = start.max(chunk_start) - chunk_start;
            let to = end.min(chunk_start + chunk_size - 1) - chunk_start;
            (i as u32, from, to - from + 1)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeRequest::*;

    #[test]
    fn parses_single_ranges() {
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(parse_range(Some("bytes=0-0"), 10), Partial { start: 0, end: 0 });
        assert_eq!(parse_range(Some("bytes=2-5"), 10), Partial { start: 2, end: 5 });
        assert_eq!(parse_range(Some("bytes=2-50"), 10), Partial { start: 2, end: 9 });
        assert_eq!(parse_range(Some("bytes=7-"), 10), Partial { start: 7, end: 9 });
        assert_eq!(parse_range(Some("bytes=-3"), 10), Partial { start: 7, end: 9 });
        assert_eq!(parse_range(Some("bytes=-30"), 10), Partial { start: 0, end: 9 });
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=15-20"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        for ignored in ["items=0-1", "bytes=5-2", "bytes=a-b", "bytes=0-1,3-4", "bytes=-", "bytes=1", "bytes=+1-2"] {
            assert_eq!(parse_range(Some(ignored), 10), Full, "{ignored}");
        }
    }

    #[test]
    fn spans_cross_chunk_boundaries() {
        assert_eq!(chunk_spans(0, 9, 4), vec![(0, 0, 4), (1, 0, 4), (2, 0, 2)]);
        assert_eq!(chunk_spans(3, 4, 4), vec![(0, 3, 1), (1, 0, 1)]);
        assert_eq!(chunk_spans(5, 5, 4), vec![(1, 1, 1)]);
        assert!(chunk_spans(5, 4, 4).is_empty());
    }
}
