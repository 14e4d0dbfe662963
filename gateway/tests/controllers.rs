//! The controller trio under failure: leader kills under load, follower
//! catch-up by snapshot, membership changes under load, a paused leader,
//! a leader cut off from its followers (read leases), and failover times.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::sync::Mutex;

const CHUNK: u64 = 64 * 1024;

fn opts() -> ClusterOptions {
    ClusterOptions { chunk_size: CHUNK, heartbeat_ms: 300, dead_after_ms: 10_000, ..Default::default() }
}

/// What a load generator saw: acknowledged uploads (id, content) and how
/// many requests failed.
#[derive(Default)]
struct Load {
    acked: Mutex<Vec<(String, Vec<u8>)>>,
    failed: AtomicUsize,
    ok_requests: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

/// `clients` tasks uploading and reading back until `stop` is set.
fn start_load(
    cluster: &Cluster,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
    let load = Arc::new(Load::default());
    let mut tasks = Vec::new();
    for c in 0..clients {
        let load = load.clone();
        let stop = stop.clone();
        let client = cluster.client.clone();
        let base = cluster.http.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let data = random_bytes(((c as u64 * 7919 + i * 104_729) % 200_000) as usize, c as u64 * 1_000_000 + i);
                let name = format!("load-{c}-{i}.bin");
                let result =
                    client.post(format!("{base}/api/files")).query(&[("name", &name)]).body(data.clone()).send().await;
                match result {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        let id = body["id"].as_str().unwrap_or_default().to_string();
                        load.ok_requests.fetch_add(1, Ordering::Relaxed);
                        // Read it straight back.
                        match client.get(format!("{base}/api/files/{id}/content")).send().await {
                            Ok(r) if r.status().is_success() => {
                                let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                                if body != data {
                                    load.errors.lock().await.push(format!("{name}: read back differs"));
                                }
                                load.ok_requests.fetch_add(1, Ordering::Relaxed);
                            }
                            other => {
                                load.failed.fetch_add(1, Ordering::Relaxed);
                                load.errors.lock().await.push(format!("read {name}: {:?}", other.map(|r| r.status())));
                            }
                        }
                        load.acked.lock().await.push((id, data));
                    }
                    other => {
                        load.failed.fetch_add(1, Ordering::Relaxed);
                        let what = match other {
                            Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                            Err(e) => e.to_string(),
                        };
                        load.errors.lock().await.push(format!("upload {name}: {what}"));
                    }
                }
            }
        }));
    }
    (load, tasks)
}

async fn stop_load(stop: &AtomicBool, tasks: Vec<tokio::task::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
}

async fn assert_acked_readable(cluster: &Cluster, load: &Load) {
    let acked = load.acked.lock().await;
    for (id, data) in acked.iter() {
        let (status, body) = cluster.download(id).await;
        assert_eq!(status, 200, "acknowledged upload {id} unreadable");
        assert!(body == *data, "acknowledged upload {id} differs");
    }
}

async fn wait_for_requests(load: &Load, more_than: usize) {
    eventually(Duration::from_secs(60), "load making progress", || async {
        (load.ok_requests.load(Ordering::Relaxed) > more_than).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_killed_under_load_loses_no_acknowledged_upload() {
    let mut cluster = Cluster::start("leaderkill", opts()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (load, tasks) = start_load(&cluster, 8, stop.clone());
    wait_for_requests(&load, 40).await;
    for round in 0..2 {
        let leader = cluster.leader_id().await;
        let before = load.ok_requests.load(Ordering::Relaxed);
        cluster.controllers[leader - 1].kill();
        // Progress resumes under a new leader.
        wait_for_requests(&load, before + 40).await;
        let new_leader = cluster.leader_id().await;
        assert_ne!(new_leader, leader, "round {round}");
        cluster.controllers[leader - 1].start().expect("start a service process");
    }
    stop_load(&stop, tasks).await;
    let failed = load.failed.load(Ordering::Relaxed);
    let ok = load.ok_requests.load(Ordering::Relaxed);
    println!("leader kills under load: {ok} successful requests, {failed} failed");
    for e in load.errors.lock().await.iter().take(10) {
        println!("  failure: {e}");
    }
    assert_acked_readable(&cluster, &load).await;
    assert!(load.errors.lock().await.iter().all(|e| !e.contains("differs")));
    assert_eq!(failed, 0, "client requests failed across leader changes");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_follower_catches_up_by_snapshot() {
    let opts = ClusterOptions { controller_args: vec!["--snapshot-every=500".into()], ..opts() };
    let mut cluster = Cluster::start("snapshot", opts).await;
    let leader = cluster.leader_id().await;
    let follower = if leader == 1 { 2 } else { 1 };
    cluster.controllers[follower - 1].kill();

    // Thousands of log entries, far past what the leader keeps after a
    // snapshot (every 500 here, 1,000 kept), so the follower cannot catch up
    // from the log. Concurrent uploads share entries (batched proposals), so
    // sequential ones top the log up to the size wanted.
    let names: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..16 {
        let client = cluster.client.clone();
        let base = cluster.http.clone();
        let names = names.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..320 {
                let name = format!("e-{c}-{i}");
                let r = client.post(format!("{base}/api/files")).query(&[("name", &name)]).body("").send().await;
                assert_eq!(r.map(|r| r.status().as_u16()).unwrap_or(0), 201, "{name}");
                names.lock().await.push(name);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let last_log_index = |s: &serde_json::Value| {
        s["controllers"].as_array().unwrap().iter().filter_map(|c| c["last_log_index"].as_u64()).max().unwrap_or(0)
    };
    let mut extra = 0;
    loop {
        let (_, s) = cluster.get_json("/admin/summary").await;
        if last_log_index(&s) >= 4_000 {
            break;
        }
        assert!(extra < 10_000, "the log does not grow: {s}");
        for _ in 0..200 {
            let name = format!("s-{extra}");
            let r = cluster.client.post(cluster.url("/api/files")).query(&[("name", &name)]).body("").send().await;
            assert_eq!(r.map(|r| r.status().as_u16()).unwrap_or(0), 201, "{name}");
            names.lock().await.push(name);
            extra += 1;
        }
    }

    cluster.controllers[follower - 1].start().expect("start a service process");
    let name = format!("controller-{follower}");
    eventually(Duration::from_secs(60), "follower installed a snapshot", || async {
        cluster.log_of(&name).contains("snapshot installed from the leader").then_some(())
    })
    .await;
    eventually(Duration::from_secs(60), "follower caught up", || async {
        let (_, s) = cluster.get_json("/admin/summary").await;
        let controllers = s["controllers"].as_array()?;
        let me = controllers.iter().find(|c| c["id"] == follower as u64)?;
        let top = controllers.iter().filter_map(|c| c["last_log_index"].as_u64()).max()?;
        (me["last_log_index"].as_u64()? + 5 >= top && me["role"] == "follower").then_some(())
    })
    .await;
    // Make the caught-up follower matter: kill the leader; the files are all there.
    let leader = cluster.leader_id().await;
    cluster.controllers[leader - 1].kill();
    let (_, page) = cluster.get_json("/api/files?limit=1000&q=e-15-").await;
    assert_eq!(page["files"].as_array().unwrap().len(), 320);
}

#[tokio::test(flavor = "multi_thread")]
async fn grow_to_five_controllers_and_back_under_load() {
    let mut cluster = Cluster::start("membership", opts()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (load, tasks) = start_load(&cluster, 4, stop.clone());
    wait_for_requests(&load, 20).await;
    let mut added = Vec::new();
    for _ in 0..2 {
        let (id, addr) = cluster.start_spare_controller();
        let response = cluster
            .client
            .post(cluster.url("/admin/controllers"))
            .json(&serde_json::json!({ "id": id, "addr": addr }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!(status, 200, "{body}");
        added.push(id);
    }
    let (_, s) = cluster.get_json("/admin/summary").await;
    assert_eq!(s["controllers"].as_array().unwrap().len(), 5, "{s}");
    wait_for_requests(&load, load.ok_requests.load(Ordering::Relaxed) + 20).await;
    // Shrink back: remove two of the original three (the leader may be one).
    for id in [1u64, 2] {
        let response = cluster.client.delete(cluster.url(&format!("/admin/controllers/{id}"))).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "removing controller {id}");
    }
    let (_, s) = cluster.get_json("/admin/summary").await;
    let ids: Vec<u64> = s["controllers"].as_array().unwrap().iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 3, "{s}");
    assert!(!ids.contains(&1) && !ids.contains(&2));
    wait_for_requests(&load, load.ok_requests.load(Ordering::Relaxed) + 20).await;
    stop_load(&stop, tasks).await;
    assert_acked_readable(&cluster, &load).await;
    // Bad requests.
    let response = cluster.client.post(cluster.url("/admin/controllers")).body("{").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let response = cluster.client.delete(cluster.url("/admin/controllers/99")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404, "an unknown controller");
}

/// A client of controller `id` alone (no redirect to the leader).
fn controller_client(
    cluster: &Cluster,
    id: usize,
) -> tessera_proto::pb::master_service_client::MasterServiceClient<tonic::transport::Channel> {
    tessera_proto::pb::master_service_client::MasterServiceClient::new(tessera_proto::control_client::lazy_channel(
        &cluster.ctl_addrs[id - 1],
        Duration::from_secs(10),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_leader_is_replaced_and_serves_nothing_stale() {
    let mut cluster = Cluster::start("pause", opts()).await;
    let (status, file) = cluster.upload_raw("before.bin", random_bytes(1000, 1)).await;
    assert_eq!(status, 201);
    let leader = cluster.leader_id().await;
    cluster.controllers[leader - 1].pause();
    // The majority elects a new leader and takes writes.
    let (status, after) = cluster.upload_raw("during.bin", random_bytes(1000, 2)).await;
    assert_eq!(status, 201, "{after}");
    let new_leader = cluster.leader_id().await;
    assert_ne!(new_leader, leader);
    cluster.controllers[leader - 1].resume();
    // Asked directly, the old leader must not serve its stale view: a
    // linearizable read there either redirects (UNAVAILABLE with the new
    // leader's address) or already sees the new file.
    let mut direct = controller_client(&cluster, leader);
    match direct.list_files(tessera_proto::pb::ListFilesRequest { limit: 100, ..Default::default() }).await {
        Ok(reply) => {
            let names: Vec<String> = reply.into_inner().files.into_iter().map(|f| f.name).collect();
            assert!(names.contains(&"during.bin".to_string()), "stale read from a deposed leader: {names:?}");
        }
        Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}"),
    }
    let before_id = file["id"].as_str().unwrap().to_string();
    let write =
        direct.delete_file(tessera_proto::pb::DeleteFileRequest { file_id: before_id, owner: String::new() }).await;
    match write {
        Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "a deposed leader took a write"),
        Ok(_) => panic!("a deposed leader answered a mutating call"),
    }
    // Through the gateway, both files are there.
    let (_, page) = cluster.get_json("/api/files").await;
    let names: Vec<&str> = page["files"].as_array().unwrap().iter().filter_map(|f| f["name"].as_str()).collect();
    assert!(names.contains(&"during.bin") && names.contains(&"before.bin"), "{names:?}");
    assert!(file["id"].is_string());
}

/// A leader answers reads under a lease (200 ms after its last heartbeat
/// round to a quorum, by default): cut off from both followers it must
/// stop answering soon after, and keep refusing, since a new leader could
/// be elected once the followers' own lease lapses.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_cut_off_from_its_followers_stops_serving_reads() {
    let mut cluster = Cluster::start("lease", opts()).await;
    let (status, _) = cluster.upload_raw("a.bin", random_bytes(1000, 3)).await;
    assert_eq!(status, 201);
    let leader = cluster.leader_id().await;
    let mut direct = controller_client(&cluster, leader);
    let list = tessera_proto::pb::ListFilesRequest { limit: 10, ..Default::default() };
    direct.list_files(list.clone()).await.expect("the leader reads with its followers up");
    let followers: Vec<usize> = (1..=3).filter(|&id| id != leader).collect();
    for &f in &followers {
        cluster.controllers[f - 1].pause();
    }
    let cut_off = Instant::now();
    loop {
        match direct.list_files(list.clone()).await {
            Ok(_) => assert!(
                cut_off.elapsed() < Duration::from_secs(10),
                "the leader still serves reads 10 s after losing both followers"
            ),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                break;
            }
        }
    }
    println!("reads refused {:?} after the followers stopped", cut_off.elapsed());
    for _ in 0..5 {
        let refused = direct.list_files(list.clone()).await;
        assert!(refused.is_err(), "a leader without its quorum served a read after refusing one");
    }
    for &f in &followers {
        cluster.controllers[f - 1].resume();
    }
    eventually(Duration::from_secs(30), "reads served again", || {
        let (mut direct, list) = (direct.clone(), list.clone());
        async move { direct.list_files(list).await.ok().map(|_| ()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_times_over_repeated_leader_kills() {
    let mut cluster = Cluster::start("failover", opts()).await;
    let mut times = Vec::new();
    for round in 0..20 {
        let leader = cluster.leader_id().await;
        cluster.controllers[leader - 1].kill();
        let killed = Instant::now();
        // First successful commit after the kill.
        loop {
            let (status, _) = cluster.upload_raw(&format!("fo-{round}"), Vec::new()).await;
            if status == 201 {
                break;
            }
            assert!(killed.elapsed() < Duration::from_secs(30), "no commit within 30 s after a leader kill");
        }
        times.push(killed.elapsed().as_secs_f64());
        cluster.controllers[leader - 1].start().expect("start a service process");
        eventually(Duration::from_secs(30), "killed controller back as follower", || async {
            let (_, s) = cluster.get_json("/admin/summary").await;
            let back = s["controllers"].as_array()?.iter().any(|c| c["id"] == leader as u64 && c["role"] == "follower");
            back.then_some(())
        })
        .await;
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    println!("failover over {} leader kills: median {median:.3} s, worst {worst:.3} s", times.len());
}
