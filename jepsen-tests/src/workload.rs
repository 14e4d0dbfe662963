//! The workload: concurrent clients over the HTTP API doing uploads (0 B to
//! several chunks of seeded random bytes with a known SHA-256), downloads,
//! range reads, listings and deletes. Each operation is an invoke, then an
//! ok, a fail (it definitely did not happen) or an info (it may have).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::history::{Kind, Recorder};

/// A file some client uploaded successfully, with what regenerates it.
#[derive(Debug, Clone)]
pub struct Known {
    pub file_id: String,
    pub seed: u64,
    pub size: usize,
    pub sha256: String,
}

pub struct Workload {
    pub http: reqwest::Client,
    pub gateways: Vec<String>,
    pub chunk_size: usize,
    pub recorder: Recorder,
    pub known: Arc<Mutex<Vec<Known>>>,
    pub stop: Arc<AtomicBool>,
}

pub fn content(seed: u64, size: usize) -> Vec<u8> {
    let mut data = vec![0u8; size];
    StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

pub fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

enum Outcome {
    Ok(Value),
    Fail(Value),
    Info(Value),
}

impl Workload {
    /// Runs client `id` until stopped.
    pub async fn client(self: Arc<Self>, id: usize, seed: u64) {
        let process = format!("client-{id}");
        let mut rng = StdRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut n = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            n += 1;
            let gateway = self.gateways[rng.gen_range(0..self.gateways.len())].clone();
            let roll = rng.gen_range(0..100);
            let target = {
                let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
                (!known.is_empty()).then(|| known[rng.gen_range(0..known.len())].clone())
            };
            match (roll, target) {
                (0..=34, _) | (_, None) => {
                    let size = self.pick_size(&mut rng);
                    let content_seed = rng.next_u64();
                    self.upload(&process, &gateway, &format!("c{id}-{n}"), content_seed, size).await;
                }
                (35..=59, Some(t)) => self.download(&process, &gateway, &t).await,
                (60..=69, Some(t)) => {
                    let start = if t.size == 0 { 0 } else { rng.gen_range(0..t.size) };
                    let len =
                        if t.size == 0 { 0 } else { rng.gen_range(1..=(t.size - start).min(3 * self.chunk_size / 2)) };
                    self.range(&process, &gateway, &t, start, len).await
                }
                (70..=84, _) => self.list(&process, &gateway).await,
                (_, Some(t)) => self.delete(&process, &gateway, &t).await,
            }
        }
    }

    fn pick_size(&self, rng: &mut StdRng) -> usize {
        let c = self.chunk_size;
        match rng.gen_range(0..8) {
            0 => 0,
            1 => 1,
            2 => c,
            3 => c + 1,
            4 => c - 1,
            _ => rng.gen_range(0..(3 * c + c / 2)),
        }
    }

    async fn op<F>(&self, process: &str, f: &str, invoke: Value, run: F)
    where
        F: std::future::Future<Output = Outcome>,
    {
        self.recorder.record(process, Kind::Invoke, f, invoke).await;
        let (kind, value) = match run.await {
            Outcome::Ok(v) => (Kind::Ok, v),
            Outcome::Fail(v) => (Kind::Fail, v),
            Outcome::Info(v) => (Kind::Info, v),
        };
        self.recorder.record(process, kind, f, value).await;
    }

    async fn upload(&self, process: &str, gateway: &str, name: &str, seed: u64, size: usize) {
        let data = content(seed, size);
        let sha = sha256(&data);
        let invoke = json!({ "name": name, "size": size, "sha256": sha, "gateway": gateway });
        let request = self.http.post(format!("{gateway}/api/files")).query(&[("name", name)]).body(data);
        self.op(process, "upload", invoke, async {
            match request.send().await {
                Ok(r) if r.status().as_u16() == 201 => match r.json::<Value>().await {
                    Ok(body) => {
                        let file_id = body["id"].as_str().unwrap_or_default().to_string();
                        self.known.lock().unwrap_or_else(|p| p.into_inner()).push(Known {
                            file_id: file_id.clone(),
                            seed,
                            size,
                            sha256: sha.clone(),
                        });
                        Outcome::Ok(json!({ "file_id": file_id }))
                    }
                    Err(e) => Outcome::Info(json!({ "error": format!("reading the answer: {e}") })),
                },
                Ok(r) if r.status().is_client_error() && r.status().as_u16() != 408 => {
                    Outcome::Fail(json!({ "status": r.status().as_u16(), "body": r.text().await.unwrap_or_default() }))
                }
                // A 5xx may come after the commit was applied: indeterminate.
                Ok(r) => {
                    Outcome::Info(json!({ "status": r.status().as_u16(), "body": r.text().await.unwrap_or_default() }))
                }
                Err(e) => Outcome::Info(json!({ "error": e.to_string() })),
            }
        })
        .await;
    }

    async fn download(&self, process: &str, gateway: &str, t: &Known) {
        let invoke = json!({ "file_id": t.file_id, "gateway": gateway });
        let request = self.http.get(format!("{gateway}/api/files/{}/content", t.file_id));
        self.op(process, "download", invoke, async {
            match request.send().await {
                Ok(r) if r.status().as_u16() == 200 => match r.bytes().await {
                    Ok(b) => Outcome::Ok(
                        json!({ "found": true, "size": b.len(), "sha256": sha256(&b), "expected_sha256": t.sha256 }),
                    ),
                    Err(e) => Outcome::Fail(json!({ "error": format!("body: {e}") })),
                },
                Ok(r) if r.status().as_u16() == 404 => Outcome::Ok(json!({ "found": false })),
                Ok(r) => Outcome::Fail(json!({ "status": r.status().as_u16() })),
                Err(e) => Outcome::Fail(json!({ "error": e.to_string() })),
            }
        })
        .await;
    }

    async fn range(&self, process: &str, gateway: &str, t: &Known, start: usize, len: usize) {
        if len == 0 {
            return self.download(process, gateway, t).await;
        }
        let end = start + len - 1;
        let expected = sha256(&content(t.seed, t.size)[start..=end]);
        let invoke = json!({ "file_id": t.file_id, "start": start, "end": end, "gateway": gateway });
        let request = self
            .http
            .get(format!("{gateway}/api/files/{}/content", t.file_id))
            .header("Range", format!("bytes={start}-{end}"));
        self.op(process, "range", invoke, async {
            match request.send().await {
                Ok(r) if r.status().as_u16() == 206 => match r.bytes().await {
                    Ok(b) => Outcome::Ok(
                        json!({ "found": true, "size": b.len(), "sha256": sha256(&b), "expected_sha256": expected }),
                    ),
                    Err(e) => Outcome::Fail(json!({ "error": format!("body: {e}") })),
                },
                Ok(r) if r.status().as_u16() == 404 => Outcome::Ok(json!({ "found": false })),
                Ok(r) => Outcome::Fail(json!({ "status": r.status().as_u16() })),
                Err(e) => Outcome::Fail(json!({ "error": e.to_string() })),
            }
        })
        .await;
    }

    async fn list(&self, process: &str, gateway: &str) {
        let request = self.http.get(format!("{gateway}/api/files")).query(&[("limit", "200")]);
        self.op(process, "list", json!({ "gateway": gateway }), async {
            match request.send().await {
                Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                    Ok(body) => Outcome::Ok(json!({ "files": slim(&body) })),
                    Err(e) => Outcome::Fail(json!({ "error": e.to_string() })),
                },
                Ok(r) => Outcome::Fail(json!({ "status": r.status().as_u16() })),
                Err(e) => Outcome::Fail(json!({ "error": e.to_string() })),
            }
        })
        .await;
    }

    async fn delete(&self, process: &str, gateway: &str, t: &Known) {
        let invoke = json!({ "file_id": t.file_id, "gateway": gateway });
        let request = self.http.delete(format!("{gateway}/api/files/{}", t.file_id));
        self.op(process, "delete", invoke, async {
            match request.send().await {
                Ok(r) if r.status().as_u16() == 204 => {
                    self.known.lock().unwrap_or_else(|p| p.into_inner()).retain(|k| k.file_id != t.file_id);
                    Outcome::Ok(json!({}))
                }
                Ok(r) if r.status().is_client_error() => Outcome::Fail(json!({ "status": r.status().as_u16() })),
                Ok(r) => Outcome::Info(json!({ "status": r.status().as_u16() })),
                Err(e) => Outcome::Info(json!({ "error": e.to_string() })),
            }
        })
        .await;
    }
}

/// id, name and size of each listed file.
pub fn slim(body: &Value) -> Vec<Value> {
    body["files"]
        .as_array()
        .map(|files| files.iter().map(|f| json!({ "id": f["id"], "name": f["name"], "size": f["size"] })).collect())
        .unwrap_or_default()
}

pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
