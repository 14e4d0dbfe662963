//! Self-healing acceptance tests: re-replication after node loss,
//! decommission, failure simulation, rebalance onto a new node, scrubbing
//! and garbage collection — each against a real cluster with short timeouts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;

const CHUNK: u64 = 64 * 1024;

fn fast_opts() -> ClusterOptions {
    // Dead after 5 s: short, yet no false alarm on a loaded 2-core machine.
    ClusterOptions { chunk_size: CHUNK, heartbeat_ms: 200, dead_after_ms: 5000, ..Default::default() }
}

async fn upload_many(cluster: &Cluster, count: usize) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for i in 0..count {
        // Mixed sizes: empty, sub-chunk, and up to five chunks.
        let size = match i % 5 {
            0 => 0,
            1 => 1 + i * 37,
            2 => CHUNK as usize,
            3 => 2 * CHUNK as usize + i,
            _ => 5 * CHUNK as usize - 3,
        };
        let data = random_bytes(size, i as u64);
        let (status, file) = cluster.upload_raw(&format!("f{i}.bin"), data.clone()).await;
        assert_eq!(status, 201, "{file}");
        files.push((file["id"].as_str().unwrap().to_string(), data));
    }
    files
}

/// Replica node ids per (file, chunk) according to the metadata.
async fn replica_map(cluster: &Cluster, files: &[(String, Vec<u8>)]) -> BTreeMap<(String, u64), BTreeSet<String>> {
    let mut map = BTreeMap::new();
    for (id, _) in files {
        let (status, meta) = cluster.get_json(&format!("/api/files/{id}")).await;
        assert_eq!(status, 200, "{meta}");
        for chunk in meta["chunks"].as_array().unwrap() {
            let replicas = chunk["replicas"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string());
            map.insert((id.clone(), chunk["index"].as_u64().unwrap()), replicas.collect());
        }
    }
    map
}

async fn assert_all_download(cluster: &Cluster, files: &[(String, Vec<u8>)]) {
    for (id, data) in files {
        let (status, body) = cluster.download(id).await;
        assert_eq!(status, 200, "download {id}");
        assert_eq!(sha256(&body), sha256(data), "content of {id}");
    }
}

async fn wait_fully_replicated(cluster: &Cluster, timeout: Duration) {
    eventually(timeout, "every chunk back at full replication", || async {
        let s = cluster.summary().await;
        (s["chunks"]["under_replicated"] == 0 && s["chunks"]["lost"] == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_nodes_are_re_replicated_and_counts_match_the_disk() {
    let mut cluster = Cluster::start("rerepl", fast_opts()).await;
    let files = upload_many(&cluster, 200).await;
    let before = replica_map(&cluster, &files).await;
    let on_dn1 = before.values().filter(|r| r.contains("dn1")).count();
    assert!(on_dn1 > 0);

    cluster.datanode("dn1").kill();
    eventually(Duration::from_secs(20), "dn1 declared dead", || async {
        let s = cluster.summary().await;
        (s["nodes"]["dead"] == 1).then_some(())
    })
    .await;
    wait_fully_replicated(&cluster, Duration::from_secs(90)).await;

    // Every chunk now has 3 replicas on the 3 live nodes, and they are on disk.
    let after = replica_map(&cluster, &files).await;
    for ((id, index), replicas) in &after {
        assert_eq!(replicas.len(), 3, "{id}/{index}: {replicas:?}");
        assert!(!replicas.contains("dn1"), "{id}/{index} still on the dead node");
        for node in replicas {
            assert!(cluster.chunk_path(node, id, *index).exists(), "{node} lacks {id}/{index}");
        }
    }
    let s = cluster.summary().await;
    assert_eq!(s["chunks"]["total"].as_u64().unwrap() as usize, after.len());
    assert!(s["rebalances"]["completed"].as_u64().unwrap() >= on_dn1 as u64);
    let (_, tasks) = cluster.get_json("/admin/rebalances").await;
    assert!(tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["kind"] == "re-replicate" && t["state"] == "completed"));
    assert_all_download(&cluster, &files).await;

    // dn1 comes back after its chunks were re-replicated: its stale copies
    // are deleted and every chunk keeps exactly 3 replicas.
    cluster.datanode("dn1").start().expect("start a service process");
    eventually(Duration::from_secs(30), "dn1 back and emptied of unwanted replicas", || async {
        let healthy = cluster.healthy_nodes().await?;
        (healthy.contains(&"dn1".to_string()) && cluster.chunk_files("dn1").is_empty()).then_some(())
    })
    .await;
    let back = replica_map(&cluster, &files).await;
    assert!(back.values().all(|r| r.len() == 3 && !r.contains("dn1")), "extra replicas after dn1 returned");
    let on_disk: usize = ["dn1", "dn2", "dn3", "dn4"].iter().map(|n| cluster.chunk_files(n).len()).sum();
    assert_eq!(on_disk, 3 * back.len(), "replica files on disk");

    // A second loss: still readable; the summary counts what is on disk.
    cluster.datanode("dn2").kill();
    eventually(Duration::from_secs(20), "dn2 declared dead", || async {
        let s = cluster.summary().await;
        // dn1 came back; dn2 is now the one dead node.
        (s["nodes"]["dead"] == 1 && s["nodes"]["healthy"] == 3).then_some(())
    })
    .await;
    assert_all_download(&cluster, &files).await;
    // Healed again onto dn1, dn3, dn4; the summary's counts match the disk.
    wait_fully_replicated(&cluster, Duration::from_secs(90)).await;
    let live: BTreeSet<&str> = ["dn1", "dn3", "dn4"].into_iter().collect();
    let last = replica_map(&cluster, &files).await;
    for ((id, index), replicas) in &last {
        assert_eq!(replicas.len(), 3, "{id}/{index}");
        for node in replicas {
            assert!(live.contains(node.as_str()), "{id}/{index} on {node}");
            assert!(cluster.chunk_path(node, id, *index).exists(), "{node} lacks {id}/{index}");
        }
    }
    let s = cluster.summary().await;
    assert_eq!(s["chunks"]["total"].as_u64().unwrap() as usize, last.len(), "{s}");
    assert_eq!(s["chunks"]["fully_replicated"].as_u64().unwrap() as usize, last.len(), "{s}");
    assert_eq!(s["chunks"]["lost"], 0);
    assert_all_download(&cluster, &files).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn decommission_drains_without_under_replication() {
    let cluster = Cluster::start("decom", fast_opts()).await;
    let files = upload_many(&cluster, 40).await;
    let response = cluster.client.delete(cluster.url("/admin/nodes/dn4")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    eventually(Duration::from_secs(90), "dn4 drained and removed", || async {
        let s = cluster.summary().await;
        assert_eq!(s["chunks"]["under_replicated"], 0, "under-replicated during a drain: {s}");
        assert_eq!(s["chunks"]["lost"], 0);
        (s["nodes"]["removed"] == 1).then_some(())
    })
    .await;
    let after = replica_map(&cluster, &files).await;
    assert!(after.values().all(|r| r.len() == 3 && !r.contains("dn4")));
    eventually(Duration::from_secs(30), "dn4's chunk files deleted", || async {
        cluster.chunk_files("dn4").is_empty().then_some(())
    })
    .await;
    let (_, tasks) = cluster.get_json("/admin/rebalances").await;
    assert!(tasks["tasks"].as_array().unwrap().iter().any(|t| t["kind"] == "drain"));
    assert_all_download(&cluster, &files).await;
    // Unknown node: 404.
    let response = cluster.client.delete(cluster.url("/admin/nodes/nope")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn simulated_failure_heals_and_recovery_cleans_up() {
    let cluster = Cluster::start("failsim", fast_opts()).await;
    let files = upload_many(&cluster, 30).await;
    let re_replications = |tasks: &serde_json::Value| {
        tasks["tasks"].as_array().map_or(0, |t| t.iter().filter(|t| t["kind"] == "re-replicate").count())
    };
    let (_, before) = cluster.get_json("/admin/rebalances").await;
    let response = cluster.client.post(cluster.url("/admin/nodes/dn2/fail")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let s = cluster.summary().await;
    assert_eq!(s["nodes"]["failed_simulated"], 1, "{s}");
    // dn2's replicas stop counting at once: its chunks are under-replicated,
    // or (small chunks copy within milliseconds) already being re-replicated.
    let (_, after) = cluster.get_json("/admin/rebalances").await;
    assert!(
        s["chunks"]["under_replicated"].as_u64().unwrap() > 0 || re_replications(&after) > re_replications(&before),
        "{s} {after}"
    );
    wait_fully_replicated(&cluster, Duration::from_secs(60)).await;
    assert_all_download(&cluster, &files).await;

    let response = cluster.client.post(cluster.url("/admin/nodes/dn2/recover")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    eventually(Duration::from_secs(20), "dn2 healthy again", || async {
        cluster.healthy_nodes().await?.contains(&"dn2".to_string()).then_some(())
    })
    .await;
    // Its replicas were replaced while it was down: they are deleted now.
    let wanted = replica_map(&cluster, &files).await;
    let wanted_on_dn2 = wanted.values().filter(|r| r.contains("dn2")).count();
    eventually(Duration::from_secs(30), "dn2 holds only wanted replicas", || async {
        (cluster.chunk_files("dn2").len() == wanted_on_dn2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_node_receives_replicas_by_rebalance() {
    let mut cluster = Cluster::start("rebalance", fast_opts()).await;
    let files = upload_many(&cluster, 40).await;
    let new_node = cluster.add_datanode();
    let files_ref = &files;
    let new_ref = &new_node;
    eventually(Duration::from_secs(90), "rebalance evened stored bytes with the new node", || async {
        // Stored bytes per node from the metadata: the planner evens these out.
        let mut stored: BTreeMap<String, u64> = BTreeMap::new();
        for (id, _) in files_ref {
            let (_, meta) = cluster.get_json(&format!("/api/files/{id}")).await;
            for chunk in meta["chunks"].as_array()? {
                for node in chunk["replicas"].as_array()? {
                    *stored.entry(node.as_str()?.to_string()).or_default() += chunk["size"].as_u64()?;
                }
            }
        }
        let s = cluster.summary().await;
        assert_eq!(s["chunks"]["under_replicated"], 0, "below RF during a rebalance: {s}");
        let new = stored.get(new_ref.as_str()).copied().unwrap_or(0);
        let max = stored.values().copied().max()?;
        (new > 0 && max - new <= 2 * CHUNK).then_some(())
    })
    .await;
    let s = cluster.summary().await;
    assert_eq!(s["chunks"]["under_replicated"], 0);
    let (_, tasks) = cluster.get_json("/admin/rebalances").await;
    assert!(tasks["counts"]["completed"].as_u64().unwrap() > 0);
    assert!(tasks["tasks"].as_array().unwrap().iter().any(|t| t["kind"] == "rebalance"));
    // An explicit pass is accepted (and finds nothing left to do).
    let response = cluster.client.post(cluster.url("/admin/rebalances")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 202);
    assert_all_download(&cluster, &files).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scrubber_finds_corruption_and_the_chunk_is_repaired() {
    let opts = ClusterOptions {
        datanode_args: vec!["--scrub-interval-ms=300".into(), "--scrub-bytes-per-sec=100000000".into()],
        ..fast_opts()
    };
    let cluster = Cluster::start("scrub", opts).await;
    let files = upload_many(&cluster, 20).await;
    let map = replica_map(&cluster, &files).await;
    // Flip bytes in 10 chunk files, each a different chunk.
    let mut corrupted = Vec::new();
    for ((id, index), replicas) in map.iter().filter(|((_, i), _)| *i == 0) {
        if corrupted.len() == 10 {
            break;
        }
        let node = replicas.iter().next().unwrap().clone();
        let path = cluster.chunk_path(&node, id, *index);
        let Ok(mut bytes) = std::fs::read(&path) else { continue };
        if bytes.is_empty() {
            continue;
        }
        bytes[0] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        corrupted.push((id.clone(), *index, node));
    }
    assert_eq!(corrupted.len(), 10);
    let good = |id: &str, index: u64| -> Vec<u8> {
        let data = &files.iter().find(|(f, _)| f == id).unwrap().1;
        let start = (index * CHUNK) as usize;
        data[start..(start + CHUNK as usize).min(data.len())].to_vec()
    };
    // The scrubber finds each of the 10 (checked before any read could).
    eventually(Duration::from_secs(60), "the scrubber reports all 10 corrupt chunks", || async {
        let found = corrupted.iter().all(|(id, index, node)| {
            cluster
                .log_of(node)
                .lines()
                .any(|l| l.contains("scrubber found a corrupt chunk") && l.contains(&format!("{id}/{index}")))
        });
        found.then_some(())
    })
    .await;
    eventually(Duration::from_secs(90), "all 10 corrupt replicas repaired", || async {
        // No download returns wrong bytes meanwhile.
        assert_all_download(&cluster, &files).await;
        let map = replica_map(&cluster, &files).await;
        let repaired = corrupted.iter().all(|(id, index, _)| {
            let replicas = &map[&(id.clone(), *index)];
            replicas.len() == 3
                && replicas
                    .iter()
                    .all(|n| std::fs::read(cluster.chunk_path(n, id, *index)).is_ok_and(|b| b == good(id, *index)))
        });
        repaired.then_some(())
    })
    .await;
    wait_fully_replicated(&cluster, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn abandoned_uploads_are_garbage_collected() {
    let opts = ClusterOptions {
        controller_args: vec!["--upload-grace-ms=1500".into()],
        // Chunks stored but never reported are found through the inventory.
        datanode_args: vec!["--inventory-interval-ms=1000".into()],
        ..fast_opts()
    };
    let mut cluster = Cluster::start("gc", opts).await;
    // An upload whose gateway dies half-way.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let client = cluster.client.clone();
    let url = cluster.url("/api/files?name=abandoned.bin");
    let upload = tokio::spawn(async move { client.post(url).body(body).send().await.map(|r| r.status().as_u16()) });
    tx.send(Ok(random_bytes(4 * CHUNK as usize, 9))).await.unwrap();
    eventually(Duration::from_secs(20), "chunks of the unfinished upload on disk", || async {
        let n: usize = cluster.datanodes.iter().map(|d| cluster.chunk_files(&d.name).len()).sum();
        (n >= 3).then_some(())
    })
    .await;
    cluster.gateway.kill();
    drop(tx);
    let _ = upload.await;
    cluster.gateway.start().expect("start a service process");
    eventually(Duration::from_secs(60), "abandoned chunks removed", || async {
        let n: usize = cluster.datanodes.iter().map(|d| cluster.chunk_files(&d.name).len()).sum();
        (n == 0).then_some(())
    })
    .await;
    assert!(cluster.list_names().await.is_empty());
}
