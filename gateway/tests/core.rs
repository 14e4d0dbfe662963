//! Acceptance tests of the core capability (upload, download, list, delete
//! over the Raft control plane), each against a real cluster of processes.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

const SMALL_CHUNK: u64 = 64 * 1024;

fn file_id(file: &serde_json::Value) -> String {
    file["id"].as_str().expect("file id").to_string()
}

/// Every chunk of `id` is on exactly `replication` distinct nodes, at the
/// layout path, with nowhere else holding it; the metadata names those nodes.
async fn assert_layout(cluster: &Cluster, id: &str, data: &[u8]) {
    let (status, meta) = cluster.get_json(&format!("/api/files/{id}")).await;
    assert_eq!(status, 200, "{meta}");
    let chunks = meta["chunks"].as_array().expect("chunks");
    let chunk_size = meta["chunk_size"].as_u64().expect("chunk_size");
    assert_eq!(chunks.len() as u64, (data.len() as u64).div_ceil(chunk_size));
    for chunk in chunks {
        let index = chunk["index"].as_u64().expect("index");
        let replicas: BTreeSet<String> =
            chunk["replicas"].as_array().expect("replicas").iter().map(|r| r.as_str().unwrap().to_string()).collect();
        assert_eq!(replicas.len(), cluster.opts.replication as usize, "chunk {index}: {replicas:?}");
        let start = (index * chunk_size) as usize;
        let end = (start + chunk_size as usize).min(data.len());
        for node in &cluster.datanodes {
            let path = cluster.chunk_path(&node.name, id, index);
            if replicas.contains(&node.name) {
                let on_disk = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(on_disk == data[start..end], "chunk {index} on {} differs", node.name);
            } else {
                assert!(!path.exists(), "{} holds chunk {index} but is not listed", node.name);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn files_of_every_size_round_trip_raw_and_multipart() {
    let cluster = Cluster::start("roundtrip", ClusterOptions::default()).await;
    let chunk = cluster.opts.chunk_size as usize;
    let sizes = [0, 1, chunk, chunk + 1, 50 * MIB];
    for (i, size) in sizes.into_iter().enumerate() {
        let data = random_bytes(size, i as u64);
        let name = format!("file-{size}.bin");

        let (status, file) = cluster.upload_raw(&name, data.clone()).await;
        assert_eq!(status, 201, "raw upload of {size} B: {file}");
        assert_eq!(file["size"], size as u64);
        assert_eq!(file["name"], name.as_str());
        assert_eq!(file["checksum"], blake3::hash(&data).to_hex().as_str());
        assert_eq!(file["checksum_algorithm"], "blake3");
        assert_eq!(file["replication"], 3);
        let id = file_id(&file);
        let (status, body) = cluster.download(&id).await;
        assert_eq!(status, 200);
        assert_eq!(sha256(&body), sha256(&data), "raw round trip of {size} B");
        assert_layout(&cluster, &id, &data).await;

        let (status, files) = cluster.upload_multipart(vec![(&name, data.clone())]).await;
        assert_eq!(status, 201, "multipart upload of {size} B: {files}");
        let file = &files["files"][0];
        assert_eq!(file["size"], size as u64);
        assert_eq!(file["checksum"], blake3::hash(&data).to_hex().as_str(), "multipart checksum of {size} B");
        let (status, body) = cluster.download(&file_id(file)).await;
        assert_eq!(status, 200);
        assert_eq!(sha256(&body), sha256(&data), "multipart round trip of {size} B");
    }

    // Several parts in one multipart request.
    let a = random_bytes(1000, 100);
    let b = random_bytes(3 * MIB, 101);
    let (status, files) = cluster.upload_multipart(vec![("a.txt", a.clone()), ("b.bin", b.clone())]).await;
    assert_eq!(status, 201, "{files}");
    let files = files["files"].as_array().expect("files").clone();
    assert_eq!(files.len(), 2);
    for (file, data) in files.iter().zip([a, b]) {
        let (_, body) = cluster.download(&file_id(file)).await;
        assert_eq!(sha256(&body), sha256(&data));
    }

    // Content headers.
    let (_, file) = cluster.upload_raw("notes.txt", b"hello".to_vec()).await;
    let response =
        cluster.client.get(cluster.url(&format!("/api/files/{}/content", file_id(&file)))).send().await.unwrap();
    assert_eq!(response.headers()["content-type"].to_str().unwrap().split(';').next(), Some("text/plain"));
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("notes.txt"));
    assert_eq!(response.headers()["accept-ranges"], "bytes");
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_shows_committed_files_and_delete_removes_chunks() {
    let opts = ClusterOptions { chunk_size: SMALL_CHUNK, ..Default::default() };
    let cluster = Cluster::start("listing", opts).await;

    // An upload in progress is not listed.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let slow = tokio::spawn({
        let client = cluster.client.clone();
        let url = cluster.url("/api/files?name=in-progress.bin");
        async move { client.post(url).body(body).send().await.map(|r| r.status().as_u16()) }
    });
    let first = random_bytes(3 * SMALL_CHUNK as usize, 1);
    tx.send(Ok(first.clone())).await.unwrap();
    // Wait until the gateway has stored some of it: its chunks appear on disk.
    eventually(Duration::from_secs(20), "first chunks of the slow upload on disk", || async {
        let found = cluster.datanodes.iter().any(|d| {
            std::fs::read_dir(cluster.dir.join(&d.name)).map(|mut entries| entries.next().is_some()).unwrap_or(false)
        });
        found.then_some(())
    })
    .await;
    assert!(!cluster.list_names().await.contains(&"in-progress.bin".to_string()));
    tx.send(Ok(b"tail".to_vec())).await.unwrap();
    drop(tx);
    assert_eq!(slow.await.unwrap().unwrap(), 201);
    assert!(cluster.list_names().await.contains(&"in-progress.bin".to_string()));

    // Newest first, filter and paging.
    let mut ids = Vec::new();
    for name in ["one.txt", "two.txt", "three.txt"] {
        let (status, file) = cluster.upload_raw(name, random_bytes(2 * SMALL_CHUNK as usize + 5, 7)).await;
        assert_eq!(status, 201);
        ids.push(file_id(&file));
    }
    let names = cluster.list_names().await;
    assert_eq!(&names[..3], ["three.txt", "two.txt", "one.txt"]);
    let (_, filtered) = cluster.get_json("/api/files?q=TWO").await;
    assert_eq!(filtered["files"].as_array().unwrap().len(), 1);
    let (_, page) = cluster.get_json("/api/files?limit=2").await;
    assert_eq!(page["files"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().expect("next_cursor").to_string();
    let (_, page2) = cluster.get_json(&format!("/api/files?limit=2&cursor={cursor}")).await;
    assert_eq!(page2["files"][0]["name"], "one.txt");

    // Delete: gone from the list at once, chunk files gone from disk soon.
    let victim = ids[1].clone();
    let (_, meta) = cluster.get_json(&format!("/api/files/{victim}")).await;
    let chunk_count = meta["chunks"].as_array().unwrap().len();
    let response = cluster.client.delete(cluster.url(&format!("/api/files/{victim}"))).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 204);
    assert!(!cluster.list_names().await.contains(&"two.txt".to_string()));
    let (status, _) = cluster.get_json(&format!("/api/files/{victim}")).await;
    assert_eq!(status, 404);
    let (status, _) = cluster.download(&victim).await;
    assert_eq!(status, 404);
    let response = cluster.client.delete(cluster.url(&format!("/api/files/{victim}"))).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404, "second delete");
    eventually(Duration::from_secs(30), "deleted file's chunks removed from disk", || async {
        let left = cluster
            .datanodes
            .iter()
            .flat_map(|d| (0..chunk_count as u64).map(move |i| (d.name.clone(), i)))
            .filter(|(node, i)| cluster.chunk_path(node, &victim, *i).exists())
            .count();
        (left == 0).then_some(())
    })
    .await;
    // The other files are untouched.
    for id in [&ids[0], &ids[2]] {
        let (status, _) = cluster.download(id).await;
        assert_eq!(status, 200);
    }

    // Usage reflects the files.
    let (status, usage) = cluster.get_json("/api/usage").await;
    assert_eq!(status, 200);
    assert_eq!(usage["files"], 3);
    assert!(usage["stored_bytes"].as_u64().unwrap() >= 3 * usage["bytes"].as_u64().unwrap());
    assert!(usage["capacity_bytes"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_survive_a_killed_node_and_a_corrupt_replica() {
    let opts = ClusterOptions { chunk_size: SMALL_CHUNK, ..Default::default() };
    let mut cluster = Cluster::start("failures", opts).await;
    let mut files = Vec::new();
    for i in 0..6u64 {
        let data = random_bytes((i as usize + 1) * 100_000, i);
        let (status, file) = cluster.upload_raw(&format!("f{i}.bin"), data.clone()).await;
        assert_eq!(status, 201, "{file}");
        files.push((file_id(&file), data));
    }

    // One replica's bytes overwritten on disk: still correct, and reported.
    let (id, data) = files[5].clone();
    let (_, meta) = cluster.get_json(&format!("/api/files/{id}")).await;
    let replicas: Vec<String> =
        meta["chunks"][1]["replicas"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    // Corrupt two of the three replicas, so any read order meets a bad one.
    let corrupted: Vec<String> = replicas[..2].to_vec();
    for bad in &corrupted {
        let path = cluster.chunk_path(bad, &id, 1);
        let mut bytes = std::fs::read(&path).unwrap();
        for b in bytes.iter_mut().take(100) {
            *b = !*b;
        }
        std::fs::write(&path, bytes).unwrap();
    }
    eventually(Duration::from_secs(20), "a corrupt replica reported and dropped", || async {
        let (status, body) = cluster.download(&id).await;
        assert_eq!(status, 200);
        assert_eq!(sha256(&body), sha256(&data), "download with corrupt replicas");
        let (_, meta) = cluster.get_json(&format!("/api/files/{id}")).await;
        let listed: Vec<&str> = meta["chunks"][1]["replicas"].as_array()?.iter().filter_map(|r| r.as_str()).collect();
        corrupted.iter().any(|bad| !listed.contains(&bad.as_str())).then_some(())
    })
    .await;
    // Reads keep reporting bad copies and repair replaces them: the chunk
    // ends with 3 good replicas. (Only then is another fault within RF-1.)
    let good = data[SMALL_CHUNK as usize..2 * SMALL_CHUNK as usize].to_vec();
    eventually(Duration::from_secs(60), "chunk back at 3 good replicas", || async {
        let (status, body) = cluster.download(&id).await;
        assert_eq!(status, 200);
        assert_eq!(sha256(&body), sha256(&data), "download with corrupt replicas");
        let (_, meta) = cluster.get_json(&format!("/api/files/{id}")).await;
        let listed: Vec<String> =
            meta["chunks"][1]["replicas"].as_array()?.iter().filter_map(|r| r.as_str().map(String::from)).collect();
        let all_good = listed.len() == 3
            && listed.iter().all(|n| std::fs::read(cluster.chunk_path(n, &id, 1)).is_ok_and(|b| b == good));
        all_good.then_some(())
    })
    .await;

    // kill -9 one data node: everything still downloads byte-identical.
    cluster.datanode("dn2").kill();
    for (id, data) in &files {
        let (status, body) = cluster.download(id).await;
        assert_eq!(status, 200, "download of {id} with dn2 dead");
        assert_eq!(sha256(&body), sha256(data));
    }
    // And uploads keep working on the remaining three nodes once dn2 is known dead.
    eventually(Duration::from_secs(30), "dn2 no longer healthy", || async {
        let healthy = cluster.healthy_nodes().await?;
        (!healthy.contains(&"dn2".to_string())).then_some(())
    })
    .await;
    let data = random_bytes(300_000, 99);
    let (status, file) = cluster.upload_raw("after-kill.bin", data.clone()).await;
    assert_eq!(status, 201, "{file}");
    let (_, body) = cluster.download(&file_id(&file)).await;
    assert_eq!(sha256(&body), sha256(&data));
}

/// A plan reserves room on its targets until their next heartbeat reports
/// what they really hold. A small file must reserve what it stores, a file
/// of known size no more chunks than it has, and a body of unknown length
/// one chunk until it proves longer; else a burst of small uploads looks
/// like a full cluster (each used to reserve 4 MiB, a streamed one 64 MiB,
/// per target).
#[tokio::test(flavor = "multi_thread")]
async fn uploads_reserve_only_the_room_they_need() {
    let opts = ClusterOptions {
        // Six 4 MiB chunks per node, 96 MiB in all. Heartbeats (which end
        // reservations) far apart, so the uploads below share one interval.
        datanode_capacity: 24 * MIB as u64,
        heartbeat_ms: 5_000,
        dead_after_ms: 60_000,
        ..Default::default()
    };
    let cluster = Cluster::start("reserve", opts).await;
    // A whole chunk reserved per replica would be 20 x 3 x 4 MiB = 240 MiB.
    for i in 0..20u8 {
        let (status, body) = cluster.upload_raw(&format!("small-{i}.bin"), vec![i; 64 * 1024]).await;
        assert_eq!(status, 201, "small upload {i}: {body}");
    }
    // Bodies of unknown length: one chunk each (sixteen would not fit).
    for i in 0..3u8 {
        let pieces = vec![Ok::<_, std::io::Error>(vec![i; 1024])];
        let response = cluster
            .client
            .post(cluster.url(&format!("/api/files?name=streamed-{i}.bin")))
            .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_eq!(status, 201, "streamed upload {i}: {}", response.text().await.unwrap_or_default());
    }
    // Three chunks planned for a 10 MiB file, not sixteen.
    let ten = random_bytes(10 * MIB, 7);
    let (status, body) = cluster.upload_raw("ten.bin", ten.clone()).await;
    assert_eq!(status, 201, "10 MiB upload: {body}");
    let (status, downloaded) = cluster.download(&file_id(&body)).await;
    assert_eq!(status, 200);
    assert_eq!(sha256(&downloaded), sha256(&ten));
    assert_eq!(cluster.list_names().await.len(), 24);
}

#[tokio::test(flavor = "multi_thread")]
async fn range_requests_across_chunk_boundaries() {
    let opts = ClusterOptions { chunk_size: SMALL_CHUNK, ..Default::default() };
    let cluster = Cluster::start("ranges", opts).await;
    let cs = SMALL_CHUNK as usize;
    let data = random_bytes(3 * cs + 123, 5);
    let (status, file) = cluster.upload_raw("ranged.bin", data.clone()).await;
    assert_eq!(status, 201);
    let url = cluster.url(&format!("/api/files/{}/content", file_id(&file)));
    let len = data.len();
    let cases: Vec<(String, usize, usize)> = vec![
        (format!("bytes={}-{}", cs - 10, cs + 10), cs - 10, cs + 10),
        (format!("bytes={}-{}", cs - 1, 2 * cs + 5), cs - 1, 2 * cs + 5),
        ("bytes=0-0".into(), 0, 0),
        (format!("bytes={}-", len - 7), len - 7, len - 1),
        ("bytes=-50".into(), len - 50, len - 1),
        (format!("bytes=10-{}", len * 2), 10, len - 1),
    ];
    for (header, a, b) in cases {
        let response = cluster.client.get(&url).header("Range", &header).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 206, "{header}");
        assert_eq!(response.headers()["content-range"].to_str().unwrap(), format!("bytes {a}-{b}/{len}"), "{header}");
        let body = response.bytes().await.unwrap();
        assert!(body[..] == data[a..=b], "{header}: wrong bytes");
    }
    for header in [format!("bytes={len}-"), format!("bytes={}-{}", len + 5, len + 10)] {
        let response = cluster.client.get(&url).header("Range", &header).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 416, "{header}");
        assert_eq!(response.headers()["content-range"].to_str().unwrap(), format!("bytes */{len}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn large_uploads_report_their_chunks_in_batches() {
    let opts = ClusterOptions { chunk_size: SMALL_CHUNK, ..Default::default() };
    let cluster = Cluster::start("batched", opts).await;
    let cs = SMALL_CHUNK as usize;
    // A large upload's stored chunks are reported in batches of 16: 41
    // chunks take create, two or three reports and commit (5 entries; one
    // report per chunk took 16, however the leader batched them).
    let log_end = |summary: serde_json::Value| {
        summary["controllers"]
            .as_array()
            .expect("controllers")
            .iter()
            .filter_map(|c| c["last_log_index"].as_u64())
            .max()
    };
    let before = log_end(cluster.summary().await).expect("a log index");
    let many = random_bytes(40 * cs + 1, 6);
    let (status, file) = cluster.upload_raw("batched.bin", many.clone()).await;
    assert_eq!(status, 201, "{file}");
    let after = log_end(cluster.summary().await).expect("a log index");
    assert!(after - before <= 8, "a 41-chunk upload took {} log entries", after - before);
    let (_, body) = cluster.download(&file_id(&file)).await;
    assert!(body == many, "the batched upload reads back");
    assert_layout(&cluster, &file_id(&file), &many).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_files_survive_a_full_controller_restart() {
    let opts = ClusterOptions { chunk_size: SMALL_CHUNK, ..Default::default() };
    let mut cluster = Cluster::start("restart", opts).await;
    let mut files = Vec::new();
    for i in 0..5u64 {
        let data = random_bytes(150_000 + i as usize, i);
        let (status, file) = cluster.upload_raw(&format!("keep-{i}.bin"), data.clone()).await;
        assert_eq!(status, 201);
        files.push((file_id(&file), data));
    }
    for c in cluster.controllers.iter_mut() {
        c.kill();
    }
    // Restart in a different order.
    for i in [2, 0, 1] {
        cluster.controllers[i].start().expect("start a service process");
    }
    cluster.wait_ready().await;
    let names = cluster.list_names().await;
    for i in 0..5 {
        assert!(names.contains(&format!("keep-{i}.bin")), "{names:?}");
    }
    for (id, data) in &files {
        let (status, body) = cluster.download(id).await;
        assert_eq!(status, 200);
        assert_eq!(sha256(&body), sha256(data));
    }
    // And the restarted cluster takes writes.
    let (status, _) = cluster.upload_raw("after-restart.bin", random_bytes(1000, 1)).await;
    assert_eq!(status, 201);
    let (_, summary) = cluster.get_json("/admin/summary").await;
    assert!(summary["leader"].is_number(), "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors_and_loses_nothing() {
    let opts = ClusterOptions { chunk_size: SMALL_CHUNK, dead_after_ms: 1500, ..Default::default() };
    let mut cluster = Cluster::start("badinput", opts).await;
    let keep = random_bytes(200_000, 3);
    let (status, file) = cluster.upload_raw("keep.bin", keep.clone()).await;
    assert_eq!(status, 201);
    let keep_id = file_id(&file);

    fn assert_error(status: u16, body: &serde_json::Value, want_status: u16, what: &str) {
        assert_eq!(status, want_status, "{what}: {body}");
        assert!(body["error"]["code"].is_string(), "{what}: no error code in {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
    }

    // Unknown ids.
    let unknown = "0193a6e4-7b1c-7d2e-8f00-1234567890ab";
    for path in [
        format!("/api/files/{unknown}"),
        format!("/api/files/{unknown}/content"),
        "/api/files/not-a-uuid".to_string(),
        "/api/files/..%2F..%2Fetc%2Fpasswd".to_string(),
    ] {
        let (status, body) = cluster.get_json(&path).await;
        assert_error(status, &body, 404, &path);
    }
    let response = cluster.client.delete(cluster.url(&format!("/api/files/{unknown}"))).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);

    // Bad names.
    let long = "x".repeat(256);
    for name in ["a/b.txt", "..", "../etc/passwd", "nul\0byte", long.as_str(), ""] {
        let (status, body) = cluster.upload_raw(name, b"data".to_vec()).await;
        assert_error(status, &body, 400, &format!("name {name:?}"));
    }
    let response = cluster.client.post(cluster.url("/api/files")).body("no name").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400, "missing name");
    let (status, body) = cluster.upload_multipart(vec![("dir/evil.txt", b"x".to_vec())]).await;
    assert_error(status, &body, 400, "multipart with a path-like file name");

    // Malformed multipart.
    let response = cluster
        .client
        .post(cluster.url("/api/files"))
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nunterminated")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    assert_error(status, &body, 400, "malformed multipart");

    // Bad range header values are errors only when unsatisfiable.
    let response = cluster
        .client
        .get(cluster.url(&format!("/api/files/{keep_id}/content")))
        .header("Range", "bytes=999999999-")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 416);

    // Fewer than RF healthy data nodes: 503, and nothing is lost.
    cluster.datanode("dn1").kill();
    cluster.datanode("dn2").kill();
    eventually(Duration::from_secs(30), "only two healthy nodes", || async {
        let healthy = cluster.healthy_nodes().await?;
        (healthy.len() == 2).then_some(())
    })
    .await;
    let (status, body) = cluster.upload_raw("refused.bin", b"data".to_vec()).await;
    assert_error(status, &body, 503, "upload with two healthy nodes");
    let response = cluster.client.get(cluster.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(cluster.list_names().await, vec!["keep.bin".to_string()]);
    let (status, body) = cluster.download(&keep_id).await;
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), sha256(&keep));
}

/// The gateway's peak resident memory (VmHWM) in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("gateway status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_share_a_bounded_memory_budget() {
    // 32 MiB for every transfer together: a 4 MiB chunk on its way to three
    // replicas costs 16 MiB of it, so two such chunks at a time in the whole
    // gateway. Unbounded, twelve 16 MiB uploads at once held ~600 MiB.
    const FILES: u64 = 12;
    let cluster = Cluster::start(
        "budget",
        ClusterOptions { gateway_args: vec!["--transfer-memory-mib=32".into()], ..ClusterOptions::default() },
    )
    .await;
    let pid = cluster.gateway.pid().expect("gateway pid");
    let files: Vec<Vec<u8>> = (0..FILES).map(|i| random_bytes(16 * MIB, 700 + i)).collect();
    let names: Vec<String> = (0..FILES).map(|i| format!("budget-{i}.bin")).collect();
    let uploads = names.iter().zip(&files).map(|(name, data)| cluster.upload_raw(name, data.clone()));
    let mut ids = Vec::new();
    for (status, file) in futures::future::join_all(uploads).await {
        assert_eq!(status, 201, "{file}");
        ids.push(file_id(&file));
    }
    let after_uploads = peak_rss_mib(pid);
    let downloads = ids.iter().map(|id| cluster.download(id));
    for ((status, body), data) in futures::future::join_all(downloads).await.into_iter().zip(&files) {
        assert_eq!(status, 200);
        assert!(body == *data, "a download differs from its upload ({} bytes read)", body.len());
    }
    let after_downloads = peak_rss_mib(pid);
    // The budget, plus the process itself and each connection's buffers.
    assert!(after_uploads < 150, "gateway peak RSS {after_uploads} MiB after {FILES} concurrent uploads");
    assert!(after_downloads < 150, "gateway peak RSS {after_downloads} MiB after {FILES} concurrent downloads");
}

/// A service that cannot start says why in one line and exits with status
/// 1, even with `RUST_BACKTRACE` set (as some shells and CI runners do):
/// no backtrace, no `Debug` dump, no cause printed twice.
#[test]
fn a_service_that_cannot_start_says_why_in_one_line() {
    let missing = std::env::temp_dir().join(format!("tessera-no-such-config-{}", std::process::id()));
    for binary in ["tessera-controller", "tessera-datanode", "tessera-gateway"] {
        let out = std::process::Command::new(bin_dir().join(binary))
            .env("RUST_BACKTRACE", "1")
            .env("TESSERA_CONFIG", &missing)
            .output()
            .unwrap_or_else(|e| panic!("running {binary}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{binary}: {stderr}");
        let expected =
            format!("error: cannot read config file {}: No such file or directory (os error 2)\n", missing.display());
        assert_eq!(stderr, expected, "{binary}");
    }
    let out = std::process::Command::new(bin_dir().join("tessera-admin"))
        .env("RUST_BACKTRACE", "1")
        .args(["certs", "--out", "/proc/tessera-cannot-write-here"])
        .output()
        .expect("running tessera-admin");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: writing /proc/tessera-cannot-write-here: "), "{stderr}");
}
