//! Security acceptance: accounts and tokens at the gateway, ownership,
//! quotas, mutual TLS on every gRPC port, and hostile ids and names refused
//! at every layer. Real processes, real certificates.

mod common;

use std::time::Duration;

use common::{eventually, random_bytes, Cluster, ClusterOptions, ADMIN_PASSWORD, MIB};
use serde_json::{json, Value};
use tessera_proto::pb;
use tessera_proto::pb::master_service_client::MasterServiceClient;
use tessera_proto::pb::storage_service_client::StorageServiceClient;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

async fn status_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Posts `body_len` bytes the way simple clients do: the whole body, then
/// read the answer. Returns the answer as text, or what stopped the client.
async fn post_whole_body_then_read(
    cluster: &Cluster,
    path: &str,
    token: Option<&str>,
    body_len: usize,
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = cluster.url(path);
    let authority = url.trim_start_matches("http://").split('/').next().unwrap_or_default().to_string();
    let mut tcp = tokio::net::TcpStream::connect(&authority).await?;
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {body_len}\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await?;
    let piece = vec![0x5au8; MIB];
    for _ in 0..body_len / MIB {
        tcp.write_all(&piece).await?;
    }
    tcp.write_all(&piece[..body_len % MIB]).await?;
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Every described operation that needs credentials, from the served
/// OpenAPI document (so a new route is covered without touching this test).
async fn protected_operations(cluster: &Cluster) -> Vec<(String, String)> {
    let doc: Value = reqwest::get(cluster.url("/api/openapi.json")).await.expect("openapi").json().await.expect("json");
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true), "{doc}");
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let open = op["security"].as_array().is_some_and(Vec::is_empty);
            if !open {
                ops.push((
                    method.to_uppercase(),
                    path.replace("{id}", "0193a6e4-7b1c-7d2e-8f00-1234567890ab").replace("{username}", "alice"),
                ));
            }
        }
    }
    assert!(ops.len() >= 20, "only {} protected operations described", ops.len());
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accounts_tokens_ownership_and_quotas() {
    // Small chunks: a streamed upload stores some before it runs over quota.
    let cluster =
        Cluster::start("security", ClusterOptions { chunk_size: 256 * 1024, ..ClusterOptions::default() }).await;
    let chunk = 256 * 1024;
    let anonymous = reqwest::Client::new();

    // Without credentials, or with a bad token: 401 everywhere.
    for (method, path) in protected_operations(&cluster).await {
        let request = anonymous.request(method.parse().expect("method"), cluster.url(&path));
        let (status, body) = status_of(request.send().await.expect("request")).await;
        assert_eq!(status, 401, "{method} {path} without credentials: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
        let forged = anonymous
            .request(method.parse().expect("method"), cluster.url(&path))
            .bearer_auth(format!("tsr_{}", "0".repeat(64)))
            .send()
            .await
            .expect("request");
        assert_eq!(forged.status(), 401, "{method} {path} with a forged token");
    }

    // Ownership: alice and bob see, read and delete only their own files.
    let alice = cluster.user_client("alice", 0).await;
    let bob = cluster.user_client("bob", 0).await;
    let (status, admin_file) = cluster.upload_raw("admin-secret.txt", b"the admin's".to_vec()).await;
    assert_eq!(status, 201, "{admin_file}");
    let admin_id = admin_file["id"].as_str().expect("id").to_string();
    let upload = |client: &reqwest::Client, name: &str, data: &[u8]| {
        client.post(cluster.url("/api/files")).query(&[("name", name)]).body(data.to_vec()).send()
    };
    let (status, alice_file) = status_of(upload(&alice, "alice.txt", b"alice's").await.expect("upload")).await;
    assert_eq!(status, 201, "{alice_file}");
    let alice_id = alice_file["id"].as_str().expect("id").to_string();
    for path in [format!("/api/files/{admin_id}"), format!("/api/files/{admin_id}/content")] {
        let (status, body) = status_of(alice.get(cluster.url(&path)).send().await.expect("get")).await;
        assert_eq!(status, 404, "alice reads the admin's file at {path}: {body}");
    }
    let (status, _) =
        status_of(bob.delete(cluster.url(&format!("/api/files/{alice_id}"))).send().await.expect("del")).await;
    assert_eq!(status, 404, "bob deleted alice's file");
    let names = |client: reqwest::Client| {
        let url = cluster.url("/api/files");
        async move {
            let body: Value = client.get(url).send().await.expect("list").json().await.expect("json");
            body["files"]
                .as_array()
                .expect("files")
                .iter()
                .map(|f| f["name"].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names(alice.clone()).await, vec!["alice.txt"]);
    assert!(names(bob.clone()).await.is_empty());
    assert_eq!(names(cluster.client.clone()).await, vec!["admin-secret.txt"]);
    let content = alice.get(cluster.url(&format!("/api/files/{alice_id}/content"))).send().await.expect("get");
    assert_eq!(content.bytes().await.expect("bytes").as_ref(), b"alice's");

    // /admin is for admins only.
    for path in ["/admin/summary", "/admin/nodes", "/admin/users", "/admin/rebalances"] {
        let (status, body) = status_of(alice.get(cluster.url(path)).send().await.expect("get")).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, _) = status_of(alice.post(cluster.url("/admin/nodes/dn1/fail")).send().await.expect("post")).await;
    assert_eq!(status, 403);

    // API tokens: listed, usable, and dead at once when revoked.
    let (status, created) = status_of(
        alice.post(cluster.url("/api/tokens")).json(&json!({ "label": "backup script" })).send().await.expect("token"),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["token"].as_str().expect("secret").to_string();
    let token_id = created["id"].as_str().expect("id").to_string();
    let scripted = common::bearer_client(&secret);
    assert_eq!(scripted.get(cluster.url("/api/files")).send().await.expect("list").status(), 200);
    let (_, listed) = status_of(alice.get(cluster.url("/api/tokens")).send().await.expect("tokens")).await;
    assert!(listed["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .any(|t| t["id"] == token_id.as_str() && t["label"] == "backup script"));
    assert!(!listed.to_string().contains(&secret), "a listing must not show secrets");
    let revoke = alice.delete(cluster.url(&format!("/api/tokens/{token_id}"))).send().await.expect("revoke");
    assert_eq!(revoke.status(), 204);
    assert_eq!(
        scripted.get(cluster.url("/api/files")).send().await.expect("list").status(),
        401,
        "revoked token still works"
    );
    let again = bob.delete(cluster.url(&format!("/api/tokens/{token_id}"))).send().await.expect("revoke");
    assert_eq!(again.status(), 404, "bob revoked alice's token");

    // Sign in and out with the session cookie.
    let browser = reqwest::Client::builder().cookie_store(true).build().expect("client");
    let login = browser
        .post(cluster.url("/api/auth/login"))
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"].to_str().expect("cookie").to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let (status, me) = status_of(browser.get(cluster.url("/api/auth/me")).send().await.expect("me")).await;
    assert_eq!((status, me["username"].as_str(), me["role"].as_str()), (200, Some("admin"), Some("admin")));
    assert_eq!(browser.post(cluster.url("/api/auth/logout")).send().await.expect("logout").status(), 204);
    assert_eq!(browser.get(cluster.url("/api/auth/me")).send().await.expect("me").status(), 401);

    // Wrong passwords: 401, then 429 once the rate limit is reached.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let response = anonymous
            .post(cluster.url("/api/auth/login"))
            .json(&json!({ "username": "bob", "password": "not-bobs-password" }))
            .send()
            .await
            .expect("login");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[0], 401, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    for bad in [json!({}), json!({ "username": "../../etc/passwd", "password": "x" }), json!("text")] {
        let response = anonymous.post(cluster.url("/api/auth/login")).json(&bad).send().await.expect("login");
        assert!([400, 401, 422].contains(&response.status().as_u16()), "{bad}: {}", response.status());
    }

    // Quota: refused before a byte is stored when the size is known, and
    // mid-stream when it is not; nothing stays behind either way.
    let carol = cluster.user_client("carol", MIB as u64).await;
    let chunks_before: usize = (1..=4).map(|i| cluster.chunk_files(&format!("dn{i}")).len()).sum();
    let (status, body) = status_of(upload(&carol, "big.bin", &random_bytes(2 * MIB, 1)).await.expect("upload")).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("quota")), "{body}");
    // A client that sends the whole body before it reads (Python's
    // `requests`, many libraries) gets the same answers, not a reset.
    let carol_token = cluster.login_token("carol").await;
    for (token, expected) in [(Some(carol_token.as_str()), "413"), (None, "401")] {
        let answer = post_whole_body_then_read(&cluster, "/api/files?name=huge.bin", token, 48 * MIB)
            .await
            .unwrap_or_else(|e| panic!("the client lost the {expected} answer: {e}"));
        assert!(answer.starts_with(&format!("HTTP/1.1 {expected}")), "{answer}");
    }
    let streamed = futures::stream::iter((0..6).map(|i| Ok::<_, std::io::Error>(random_bytes(MIB / 2, i))));
    let response = carol
        .post(cluster.url("/api/files"))
        .query(&[("name", "streamed.bin")])
        .body(reqwest::Body::wrap_stream(streamed))
        .send()
        .await
        .expect("upload");
    let (status, body) = status_of(response).await;
    assert_eq!(status, 413, "{body}");
    assert!(names(carol.clone()).await.is_empty());
    let (status, fits) = status_of(upload(&carol, "fits.bin", &random_bytes(MIB, 2)).await.expect("upload")).await;
    assert_eq!(status, 201, "exactly the quota fits: {fits}");
    let (status, _) = status_of(upload(&carol, "one-more.bin", b"x").await.expect("upload")).await;
    assert_eq!(status, 413);
    let (_, usage) = status_of(carol.get(cluster.url("/api/usage")).send().await.expect("usage")).await;
    assert_eq!(
        (usage["quota_bytes"].as_u64(), usage["bytes"].as_u64(), usage["files"].as_u64()),
        (Some(MIB as u64), Some(MIB as u64), Some(1))
    );
    // Two small files racing for the last bytes of a quota: both may pass
    // the plan (each fits alone) and store their chunk; the log lets one
    // commit and refuses the other (413), whose chunk becomes garbage.
    let dave = cluster.user_client("dave", (chunk - 1000) as u64).await;
    let racing = futures::future::join_all(
        (0..2).map(|i| upload(&dave, &format!("race-{i}.bin"), &random_bytes(chunk - 2000, 10 + i as u64))),
    )
    .await;
    let mut statuses = Vec::new();
    for response in racing {
        statuses.push(status_of(response.expect("upload")).await.0);
    }
    statuses.sort();
    assert_eq!(statuses, vec![201, 413], "exactly one of two racing small uploads fits");
    assert_eq!(names(dave.clone()).await.len(), 1);

    // The refused uploads' chunks are garbage-collected from the disks:
    // only the files that fit add replicas.
    let chunks_want = chunks_before + 3 * (MIB / chunk) + 3;
    eventually(Duration::from_secs(30), "no chunk of a refused upload left on disk", || async {
        let now: usize = (1..=4).map(|i| cluster.chunk_files(&format!("dn{i}")).len()).sum();
        (now == chunks_want).then_some(())
    })
    .await;

    // Deleting a user deletes their files; their tokens stop working.
    let (status, _) =
        status_of(cluster.client.delete(cluster.url("/admin/users/alice")).send().await.expect("del")).await;
    assert_eq!(status, 204);
    assert_eq!(alice.get(cluster.url("/api/files")).send().await.expect("list").status(), 401);
    let (status, _) =
        status_of(cluster.client.delete(cluster.url("/admin/users/admin")).send().await.expect("del")).await;
    assert_eq!(status, 409, "an admin deleted their own account");
}

/// A gRPC channel with the given TLS, bypassing the process-wide one.
async fn channel(addr: &str, tls: Option<ClientTlsConfig>) -> Result<tonic::transport::Channel, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
    }
    endpoint.connect().await.map_err(|e| format!("{e:?}"))
}

async fn controller_answers(addr: &str, tls: Option<ClientTlsConfig>) -> Result<(), String> {
    let mut client = MasterServiceClient::new(channel(addr, tls).await?);
    match client.list_nodes(pb::ListNodesRequest {}).await {
        Ok(_) => Ok(()),
        // A follower's redirect is an answer too: the handshake went through.
        // So is "not the leader" from one that has not heard of a leader
        // yet (just after start-up): only the service says that.
        Err(status)
            if status.metadata().get(tessera_proto::LEADER_METADATA_KEY).is_some()
                || tessera_proto::control_client::is_not_leader(&status) =>
        {
            Ok(())
        }
        Err(status) => Err(format!("{status:?}")),
    }
}

async fn datanode_answers(addr: &str, tls: Option<ClientTlsConfig>) -> Result<(), String> {
    let mut client = StorageServiceClient::new(channel(addr, tls).await?);
    client.health_check(pb::HealthCheckRequest {}).await.map(|_| ()).map_err(|s| format!("{s:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_needs_a_certificate_from_the_cluster_ca_and_hostile_ids_are_refused() {
    let cluster = Cluster::start("mtls", ClusterOptions { datanodes: 3, ..ClusterOptions::default() }).await;
    let tls_dir = common::tls_dir();
    let read = |name: &str| std::fs::read(tls_dir.join(name)).expect("pem");
    let ca = Certificate::from_pem(read("ca.pem"));
    let own = ClientTlsConfig::new()
        .ca_certificate(ca.clone())
        .identity(Identity::from_pem(read("admin.pem"), read("admin.key")))
        .domain_name(tessera_proto::tls::CLUSTER_DOMAIN);
    let no_cert = ClientTlsConfig::new().ca_certificate(ca.clone()).domain_name(tessera_proto::tls::CLUSTER_DOMAIN);
    let other_dir = cluster.dir.join("other-ca");
    tessera_proto::tls::generate(&other_dir, &["admin"], &[]).expect("another CA");
    let other = |name: &str| std::fs::read(other_dir.join(name)).expect("pem");
    let foreign = ClientTlsConfig::new()
        .ca_certificate(ca.clone())
        .identity(Identity::from_pem(other("admin.pem"), other("admin.key")))
        .domain_name(tessera_proto::tls::CLUSTER_DOMAIN);

    let (_, nodes) = cluster.get_json("/admin/nodes").await;
    let node_addr = |n: &Value| format!("{}:{}", n["host"].as_str().unwrap_or(""), n["grpc_port"]);
    let datanodes: Vec<String> = nodes["nodes"].as_array().expect("nodes").iter().map(node_addr).collect();
    assert_eq!(datanodes.len(), 3);

    for addr in &cluster.ctl_addrs {
        controller_answers(addr, Some(own.clone())).await.expect("the cluster's own certificate is accepted");
        assert!(controller_answers(addr, None).await.is_err(), "plaintext accepted by controller {addr}");
        assert!(
            controller_answers(addr, Some(no_cert.clone())).await.is_err(),
            "no client certificate accepted by {addr}"
        );
        assert!(
            controller_answers(addr, Some(foreign.clone())).await.is_err(),
            "another CA's certificate accepted by {addr}"
        );
    }
    for addr in &datanodes {
        datanode_answers(addr, Some(own.clone())).await.expect("the cluster's own certificate is accepted");
        assert!(datanode_answers(addr, None).await.is_err(), "plaintext accepted by data node {addr}");
        assert!(
            datanode_answers(addr, Some(no_cert.clone())).await.is_err(),
            "no client certificate accepted by {addr}"
        );
        assert!(
            datanode_answers(addr, Some(foreign.clone())).await.is_err(),
            "another CA's certificate accepted by {addr}"
        );
    }

    // Hostile ids and names at the HTTP edge.
    let long = "n".repeat(300);
    for name in ["../../etc/passwd", "/etc/passwd", "a\0b", long.as_str(), "..", "dir/file"] {
        let (status, body) = cluster.upload_raw(name, b"x".to_vec()).await;
        assert_eq!(status, 400, "name {name:?}: {body}");
    }
    for id in ["..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "a%00b", long.as_str()] {
        for path in [format!("/api/files/{id}"), format!("/api/files/{id}/content")] {
            let (status, body) = cluster.get_json(&path).await;
            assert_eq!(status, 404, "{path}: {body}");
        }
    }
    let (status, _) = cluster.get_json("/admin/nodes/..%2F..%2Fetc/fail").await;
    assert!(status == 404 || status == 405, "{status}");

    // ... at the controllers.
    let mut master =
        MasterServiceClient::new(channel(&cluster.ctl_addrs[0], Some(own.clone())).await.expect("channel"));
    for id in ["../../etc/passwd", "/etc/passwd", "a\0b", long.as_str()] {
        let lookup =
            master.get_file_metadata(pb::GetFileMetadataRequest { file_id: id.into(), ..Default::default() }).await;
        let code = lookup.expect_err("a hostile id was found").code();
        assert!(matches!(code, tonic::Code::NotFound | tonic::Code::Unavailable), "{id:?}: {code:?}");
        let register = master
            .register_node(pb::RegisterNodeRequest {
                node_id: id.into(),
                host: "127.0.0.1".into(),
                grpc_port: 1,
                ..Default::default()
            })
            .await;
        let code = register.expect_err("a hostile node id registered").code();
        assert!(matches!(code, tonic::Code::InvalidArgument | tonic::Code::Unavailable), "{id:?}: {code:?}");
        let user = master
            .create_user(pb::CreateUserRequest {
                username: id.into(),
                password_hash: "$argon2id$x".into(),
                role: "user".into(),
                quota_bytes: 0,
            })
            .await;
        let code = user.expect_err("a hostile user name was created").code();
        assert!(matches!(code, tonic::Code::InvalidArgument | tonic::Code::Unavailable), "{id:?}: {code:?}");
    }
    let plan = master
        .get_upload_plan(pb::GetUploadPlanRequest { name: long.clone(), chunk_count: 1, ..Default::default() })
        .await;
    assert!(matches!(
        plan.expect_err("an over-long name was planned").code(),
        tonic::Code::InvalidArgument | tonic::Code::Unavailable
    ));

    // ... and at the data nodes, whose disks must stay untouched.
    let mut storage = StorageServiceClient::new(channel(&datanodes[0], Some(own.clone())).await.expect("channel"));
    for id in ["../../etc/passwd", "/etc/passwd", "a\0b", long.as_str(), "../dn2/0193a6e4-7b1c-7d2e-8f00-1234567890ab"]
    {
        let header =
            pb::ChunkHeader { file_id: id.into(), index: 0, size: 1, crc32c: tessera_proto::checksum::crc32c(b"x") };
        let messages = vec![
            pb::UploadChunkRequest { kind: Some(pb::upload_chunk_request::Kind::Header(header)) },
            pb::UploadChunkRequest {
                kind: Some(pb::upload_chunk_request::Kind::Data(bytes::Bytes::from_static(b"x"))),
            },
        ];
        let upload = storage.upload_chunk(futures::stream::iter(messages)).await;
        assert_eq!(upload.expect_err("a hostile chunk id was stored").code(), tonic::Code::InvalidArgument, "{id:?}");
        let download = storage
            .download_chunk(pb::DownloadChunkRequest { file_id: id.into(), index: 0, read_once: false, size: 0 })
            .await;
        assert_eq!(download.err().map(|s| s.code()), Some(tonic::Code::InvalidArgument), "{id:?}");
        let delete = storage.delete_chunk(pb::DeleteChunkRequest { file_id: id.into(), index: 0 }).await;
        assert_eq!(delete.expect_err("a hostile delete").code(), tonic::Code::InvalidArgument, "{id:?}");
    }
    // A chunk whose bytes do not match the announced checksum is refused, not stored.
    let id = "0193a6e4-7b1c-7d2e-8f00-1234567890ab";
    let header =
        pb::ChunkHeader { file_id: id.into(), index: 0, size: 4, crc32c: tessera_proto::checksum::crc32c(b"good") };
    let messages = vec![
        pb::UploadChunkRequest { kind: Some(pb::upload_chunk_request::Kind::Header(header)) },
        pb::UploadChunkRequest { kind: Some(pb::upload_chunk_request::Kind::Data(bytes::Bytes::from_static(b"evil"))) },
    ];
    assert!(storage.upload_chunk(futures::stream::iter(messages)).await.is_err(), "a lying chunk was acknowledged");
    assert!((1..=3).all(|i| !cluster.chunk_path(&format!("dn{i}"), id, 0).exists()));
    assert!(!cluster.dir.join("etc").exists() && !cluster.dir.parent().expect("parent").join("etc").exists());

    // A file's checksum is BLAKE3, or the bare SHA-256 an older gateway
    // sends during an upgrade; anything else is refused before it is logged.
    let empty_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let cases = [
        (format!("md5:{empty_sha256}"), false),
        ("blake3:abc".to_string(), false),
        ("z".repeat(64), false),
        (String::new(), false),
        (empty_sha256.to_string(), true),
    ];
    let leader = &cluster.ctl_addrs[cluster.leader_id().await - 1];
    let mut leader = MasterServiceClient::new(channel(leader, Some(own.clone())).await.expect("channel"));
    for (checksum, accepted) in cases {
        let file_id = tessera_proto::ids::new_file_id().to_string();
        let request = pb::CreateFileRequest {
            file_id: file_id.clone(),
            name: format!("checksum-{}.bin", checksum.len()),
            owner: "admin".into(),
            checksum: checksum.clone(),
            ..Default::default()
        };
        let answer = leader.create_file(request).await;
        if !accepted {
            assert_eq!(answer.expect_err("a malformed checksum was logged").code(), tonic::Code::InvalidArgument);
            continue;
        }
        answer.expect("a legacy SHA-256 checksum was refused");
        let (status, file) = cluster.get_json(&format!("/api/files/{file_id}")).await;
        assert_eq!(status, 200, "{file}");
        assert_eq!(file["checksum"], empty_sha256);
        assert_eq!(file["checksum_algorithm"], "sha256");
    }
}
