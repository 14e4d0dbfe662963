//! Download: chunks covering the requested range are fetched with a bounded
//! window of parallel requests, each verified against the CRC32C in the
//! metadata (a data node may lie), trying the next replica on any error, and
//! streamed to the client in order.

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use tessera_proto::pb;

use crate::auth::{token_call_error, Credentials};
use crate::clients::datanode;
use crate::error::ApiError;
use crate::ops::range::chunk_spans;
use crate::state::AppState;

/// The file `file_id` of the caller; another owner's file is "not found".
/// The controller authenticates the caller in the same call (an unknown
/// token is 401 whatever the id).
pub async fn metadata(app: &AppState, caller: &Credentials, file_id: &str) -> Result<pb::FileMetadata, ApiError> {
    let request = pb::GetFileMetadataRequest {
        file_id: file_id.to_string(),
        owner: String::new(),
        token_hash: caller.token_hash.clone(),
    };
    app.control
        .call_with(request, |mut c, r| async move { c.get_file_metadata(r).await })
        .await
        .map_err(token_call_error)
}

/// The bytes `start..=end` of the file as a stream (empty for an empty range).
pub fn stream_range(
    app: AppState,
    file: pb::FileMetadata,
    start: u64,
    end: u64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let spans = if file.size == 0 { Vec::new() } else { chunk_spans(start, end, file.chunk_size) };
    let window = app.settings.download_window.max(1);
    let file = std::sync::Arc::new(file);
    futures::stream::iter(spans)
        // Memory for each chunk is reserved in file order, before its fetch
        // starts: a chunk that has its share never waits for a later one's
        // (ops/budget.rs).
        .then(move |(index, offset, len)| {
            let app = app.clone();
            let file = file.clone();
            async move {
                // The whole chunk is fetched, whatever part of it the range needs.
                let chunk_len = file.chunk_size.min(file.size.saturating_sub(u64::from(index) * file.chunk_size));
                let memory = app.transfer_budget.reserve(chunk_len).await.map_err(std::io::Error::other)?;
                // Each fetch is a task of its own (started when the window
                // has room, aborted if the response is dropped): as futures
                // polled by the response's task, a chunk's gRPC decoding and
                // CRC32C waited while that task wrote to the client, and one
                // core sat idle meanwhile (docs/performance.md, item 62).
                let fetch = tokio::spawn(fetch_span(app, file, index, offset, len));
                Ok::<_, std::io::Error>((tokio_util::task::AbortOnDropHandle::new(fetch), memory))
            }
        })
        .map_ok(|(fetch, memory)| async move {
            let slices = fetch.await.map_err(std::io::Error::other)??;
            // The reservation goes with the slices: given back once the
            // last of them has been handed to the response.
            Ok::<_, std::io::Error>(futures::stream::iter(slices.into_iter().map(move |slice| {
                let _held = &memory;
                Ok(slice)
            })))
        })
        .try_buffered(window)
        .try_flatten()
}

/// The `len` bytes at `offset` of chunk `index`, as slices of the pieces
/// it arrived in.
async fn fetch_span(
    app: AppState,
    file: std::sync::Arc<pb::FileMetadata>,
    index: u32,
    offset: u64,
    len: u64,
) -> Result<Vec<Bytes>, std::io::Error> {
    let pieces = fetch_chunk(&app, &file, index).await?;
    let (from, to) = (offset as usize, (offset + len) as usize);
    let slices = slice_pieces(pieces, from, to);
    if slices.iter().map(Bytes::len).sum::<usize>() != to - from {
        return Err(std::io::Error::other(format!("chunk {index} is shorter than the metadata says")));
    }
    Ok(slices)
}

/// The bytes `from..to` of a chunk held as consecutive pieces, as slices
/// of those pieces (nothing copied).
fn slice_pieces(pieces: Vec<Bytes>, from: usize, to: usize) -> Vec<Bytes> {
    let mut start = 0;
    let mut slices = Vec::new();
    for piece in pieces {
        let end = start + piece.len();
        if to.min(end) > from.max(start) {
            slices.push(piece.slice(from.saturating_sub(start)..to.min(end) - start));
        }
        start = end;
    }
    slices
}

/// One verified chunk from the first replica that delivers it, as the
/// pieces it arrived in. Replicas are tried from a rotating start so reads
/// spread over the nodes; a replica that sends wrong bytes is reported to
/// the controller.
async fn fetch_chunk(app: &AppState, file: &pb::FileMetadata, index: u32) -> Result<Vec<Bytes>, std::io::Error> {
    let chunk = file
        .chunks
        .iter()
        .find(|c| c.index == index)
        .ok_or_else(|| std::io::Error::other(format!("chunk {index} missing from the metadata")))?;
    let n = chunk.replicas.len();
    let start = if n == 0 { 0 } else { rand::random::<usize>() % n };
    let mut errors = Vec::new();
    for k in 0..n {
        let replica = &chunk.replicas[(start + k) % n];
        let result = datanode::download_chunk(&app.datanodes, &replica.addr, &file.file_id, index, chunk.size).await;
        let reason = match result {
            Ok(data) if data.len == chunk.size && data.crc32c == chunk.crc32c => return Ok(data.pieces),
            Ok(data) => {
                Some(format!("sent {} bytes with crc32c {:08x}, expected {:08x}", data.len, data.crc32c, chunk.crc32c))
            }
            Err(status) if status.code() == tonic::Code::DataLoss => Some(status.message().to_string()),
            Err(status) => {
                errors.push(format!("{}: {}", replica.node_id, status.message()));
                None
            }
        };
        if let Some(reason) = reason {
            tracing::warn!(file = %file.file_id, chunk = index, node = %replica.node_id, %reason, "bad replica");
            errors.push(format!("{}: {reason}", replica.node_id));
            report_bad_replica(app, &file.file_id, index, &replica.node_id, reason);
        }
    }
    Err(std::io::Error::other(format!("no replica of chunk {index} could be read: {}", errors.join("; "))))
}

fn report_bad_replica(app: &AppState, file_id: &str, index: u32, node_id: &str, reason: String) {
    let request =
        pb::ReportBadReplicaRequest { file_id: file_id.to_string(), index, node_id: node_id.to_string(), reason };
    let control = app.control.clone();
    tokio::spawn(async move {
        let result = control
            .call(|mut c| {
                let request = request.clone();
                async move { c.report_bad_replica(request).await }
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e.message(), "could not report a bad replica");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_of_a_chunk_is_sliced_from_its_pieces() {
        let pieces = || vec![Bytes::from_static(b"abcd"), Bytes::from_static(b"efg"), Bytes::from_static(b"hij")];
        let joined = |slices: Vec<Bytes>| slices.concat();
        assert_eq!(joined(slice_pieces(pieces(), 0, 10)), b"abcdefghij");
        assert_eq!(joined(slice_pieces(pieces(), 2, 9)), b"cdefghi");
        assert_eq!(joined(slice_pieces(pieces(), 4, 7)), b"efg");
        assert_eq!(slice_pieces(pieces(), 4, 7).len(), 1, "a piece wholly inside is not split");
        assert_eq!(joined(slice_pieces(pieces(), 5, 6)), b"f");
        assert!(slice_pieces(pieces(), 3, 3).is_empty());
        // Asked for more than the pieces hold: the caller sees the shortfall.
        assert_eq!(joined(slice_pieces(pieces(), 8, 20)), b"ij");
    }
}
