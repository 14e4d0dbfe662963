//! The history: every operation as invoke, then ok / fail / info, one JSON
//! object per line. `info` means indeterminate (a timeout, a 5xx after which
//! the effect may or may not have happened).

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// Line number in the history (0-based), filled by the writer.
    #[serde(default)]
    pub index: usize,
    /// Milliseconds since the run started.
    pub time_ms: u64,
    /// `client-<n>`, `nemesis` or `final`.
    pub process: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// upload, download, range, list, delete, final-list, final-read, check, or a fault.
    pub f: String,
    #[serde(default)]
    pub value: Value,
}

/// Hands entries to the writer task over a bounded channel (back pressure
/// on the clients rather than unbounded memory).
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    tx: mpsc::Sender<Entry>,
}

impl Recorder {
    pub async fn record(&self, process: &str, kind: Kind, f: &str, value: Value) {
        let entry = Entry {
            index: 0,
            time_ms: self.start.elapsed().as_millis() as u64,
            process: process.to_string(),
            kind,
            f: f.to_string(),
            value,
        };
        let _ = self.tx.send(entry).await;
    }
}

/// Starts the writer; the returned task yields every entry once all
/// recorders are dropped.
pub fn start(path: &Path) -> anyhow::Result<(Recorder, tokio::task::JoinHandle<anyhow::Result<Vec<Entry>>>)> {
    let (tx, mut rx) = mpsc::channel::<Entry>(1024);
    let path = path.to_path_buf();
    let writer = tokio::spawn(async move {
        let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(&path).await?);
        let mut all = Vec::new();
        while let Some(mut entry) = rx.recv().await {
            entry.index = all.len();
            let mut line = serde_json::to_vec(&entry)?;
            line.push(b'\n');
            file.write_all(&line).await?;
            all.push(entry);
        }
        file.flush().await?;
        file.get_ref().sync_all().await?;
        Ok(all)
    });
    Ok((Recorder { start: Instant::now(), tx }, writer))
}

/// Reads a history file back (for `--check-only`).
pub fn load(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let mut e: Entry = serde_json::from_str(l)?;
            e.index = i;
            Ok(e)
        })
        .collect()
}
