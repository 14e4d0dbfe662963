//! The checker: reads a history and reports every anomaly, with the history
//! lines that show it. Pure: it sees only the history (the runner records
//! the final reads after healing as history entries too).
//!
//! Rules:
//! - an upload that returned ok is listed and reads back byte-identical at
//!   the end, unless a delete of it was invoked (lost-upload, corrupt-file);
//! - an upload that returned info is either absent or complete at the end,
//!   never partial (partial-file);
//! - an upload that failed definitely is never visible (failed-upload-visible);
//! - a file whose delete returned ok is never listed or readable afterwards
//!   (resurrected-delete);
//! - a listing shows only files some upload created (phantom-file);
//! - every read returns the bytes that were uploaded (corrupt-read), and an
//!   acknowledged, undeleted file is never "not found" (lost-upload);
//! - after healing every chunk is back at RF and the metadata agrees with
//!   the disks (under-replicated, disk-disagrees);
//! - no service exits unless the nemesis kills it (service-crashed).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::Value;

use crate::history::{Entry, Kind};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum AnomalyKind {
    LostUpload,
    CorruptFile,
    PartialFile,
    FailedUploadVisible,
    ResurrectedDelete,
    PhantomFile,
    CorruptRead,
    UnderReplicated,
    DiskDisagrees,
    ServiceCrashed,
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            AnomalyKind::LostUpload => "lost-upload",
            AnomalyKind::CorruptFile => "corrupt-file",
            AnomalyKind::PartialFile => "partial-file",
            AnomalyKind::FailedUploadVisible => "failed-upload-visible",
            AnomalyKind::ResurrectedDelete => "resurrected-delete",
            AnomalyKind::PhantomFile => "phantom-file",
            AnomalyKind::CorruptRead => "corrupt-read",
            AnomalyKind::UnderReplicated => "under-replicated",
            AnomalyKind::DiskDisagrees => "disk-disagrees",
            AnomalyKind::ServiceCrashed => "service-crashed",
        };
        f.write_str(s)
    }
}

#[derive(Debug, Clone)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub detail: String,
    /// History lines that show it.
    pub lines: Vec<usize>,
}

#[derive(Debug, Default)]
pub struct Report {
    /// (f, outcome) -> count, client operations only.
    pub ops: BTreeMap<(String, String), u64>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    pub anomalies: Vec<Anomaly>,
}

impl Report {
    pub fn valid(&self) -> bool {
        self.anomalies.is_empty()
    }
}

/// One upload as the history tells it.
#[derive(Debug, Default, Clone)]
struct Upload {
    name: String,
    sha256: String,
    size: u64,
    outcome: Option<Kind>,
    file_id: Option<String>,
    invoke_line: usize,
    end_line: usize,
    end_ms: u64,
}

#[derive(Debug, Default, Clone)]
struct Delete {
    invoke_ms: u64,
    /// Set when the delete returned ok.
    ok_ms: Option<u64>,
    lines: Vec<usize>,
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Pairs each invoke with its completion (same process, next entry of it).
fn completions(history: &[Entry]) -> Vec<(usize, Option<usize>)> {
    let mut open: HashMap<&str, usize> = HashMap::new();
    let mut pairs: Vec<(usize, Option<usize>)> = Vec::new();
    let mut slot_of: HashMap<usize, usize> = HashMap::new();
    for (i, e) in history.iter().enumerate() {
        if e.process == "nemesis" {
            continue;
        }
        match e.kind {
            Kind::Invoke => {
                open.insert(&e.process, i);
                slot_of.insert(i, pairs.len());
                pairs.push((i, None));
            }
            _ => {
                if let Some(inv) = open.remove(e.process.as_str()) {
                    if let Some(slot) = slot_of.get(&inv) {
                        pairs[*slot].1 = Some(i);
                    }
                }
            }
        }
    }
    pairs
}

pub fn check(history: &[Entry]) -> Report {
    let mut report = Report::default();
    let pairs = completions(history);
    let mut uploads: Vec<Upload> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut deletes: HashMap<String, Delete> = HashMap::new();

    for e in history.iter().filter(|e| e.process == "nemesis") {
        if e.kind != Kind::Invoke {
            *report.faults.entry(e.f.clone()).or_default() += 1;
        }
    }

    // Pass 1: uploads and deletes.
    for (inv, done) in &pairs {
        let invoke = &history[*inv];
        let end = done.map(|d| &history[d]);
        let outcome = end.map(|e| e.kind).unwrap_or(Kind::Info);
        if !invoke.f.starts_with("final") && invoke.f != "check" {
            let label = match outcome {
                Kind::Ok => "ok",
                Kind::Fail => "fail",
                _ => "info",
            };
            *report.ops.entry((invoke.f.clone(), label.to_string())).or_default() += 1;
        }
        match invoke.f.as_str() {
            "upload" => {
                let mut up = Upload {
                    name: text(&invoke.value, "name"),
                    sha256: text(&invoke.value, "sha256"),
                    size: num(&invoke.value, "size"),
                    outcome: Some(outcome),
                    invoke_line: invoke.index,
                    end_line: end.map(|e| e.index).unwrap_or(invoke.index),
                    end_ms: end.map(|e| e.time_ms).unwrap_or(u64::MAX),
                    ..Default::default()
                };
                if outcome == Kind::Ok {
                    up.file_id = end.map(|e| text(&e.value, "file_id")).filter(|s| !s.is_empty());
                }
                by_name.insert(up.name.clone(), uploads.len());
                if let Some(id) = &up.file_id {
                    by_id.insert(id.clone(), uploads.len());
                }
                uploads.push(up);
            }
            "delete" => {
                let id = text(&invoke.value, "file_id");
                let d = deletes.entry(id).or_insert_with(|| Delete { invoke_ms: invoke.time_ms, ..Default::default() });
                d.invoke_ms = d.invoke_ms.min(invoke.time_ms);
                d.lines.push(invoke.index);
                if let Some(end) = end {
                    d.lines.push(end.index);
                    if end.kind == Kind::Ok {
                        d.ok_ms = Some(d.ok_ms.map_or(end.time_ms, |t| t.min(end.time_ms)));
                    }
                }
            }
            _ => {}
        }
    }
    // Files whose id we learn only from listings (uploads that returned info).
    let learn_id = |name: &str, id: &str, by_id: &mut HashMap<String, usize>| {
        if let Some(u) = by_name.get(name) {
            by_id.entry(id.to_string()).or_insert(*u);
        }
    };
    for e in history.iter().filter(|e| e.kind == Kind::Ok && (e.f == "list" || e.f == "final-list")) {
        for f in e.value.get("files").and_then(Value::as_array).into_iter().flatten() {
            learn_id(&text(f, "name"), &text(f, "id"), &mut by_id);
        }
    }

    let mut anomalies = Vec::new();
    let mut push = |kind, detail: String, lines: Vec<usize>| anomalies.push(Anomaly { kind, detail, lines });

    // Pass 2: reads and listings during the run and at the end.
    let mut final_listed: HashMap<String, usize> = HashMap::new();
    let mut final_reads: HashMap<String, &Entry> = HashMap::new();
    for (inv, done) in &pairs {
        let invoke = &history[*inv];
        let Some(end) = done.map(|d| &history[d]) else { continue };
        if end.kind != Kind::Ok {
            continue;
        }
        match invoke.f.as_str() {
            "list" | "final-list" => {
                for f in end.value.get("files").and_then(Value::as_array).into_iter().flatten() {
                    let (id, name) = (text(f, "id"), text(f, "name"));
                    if invoke.f == "final-list" {
                        final_listed.insert(id.clone(), end.index);
                    }
                    match by_name.get(&name).map(|u| &uploads[*u]) {
                        None => push(
                            AnomalyKind::PhantomFile,
                            format!("{name} ({id}) is listed but no upload made it"),
                            vec![end.index],
                        ),
                        Some(u) if u.outcome == Some(Kind::Fail) => push(
                            AnomalyKind::FailedUploadVisible,
                            format!("{name} ({id}) is listed although its upload failed"),
                            vec![u.invoke_line, u.end_line, end.index],
                        ),
                        Some(_) => {}
                    }
                    if let Some(d) = deletes.get(&id) {
                        if d.ok_ms.is_some_and(|ok| invoke.time_ms > ok) {
                            let mut lines = d.lines.clone();
                            lines.push(end.index);
                            push(
                                AnomalyKind::ResurrectedDelete,
                                format!("{name} ({id}) is listed after its delete returned ok"),
                                lines,
                            );
                        }
                    }
                }
            }
            "download" | "range" | "final-read" => {
                let id = text(&invoke.value, "file_id");
                let found = end.value.get("found").and_then(Value::as_bool).unwrap_or(true);
                if invoke.f == "final-read" {
                    final_reads.insert(id.clone(), end);
                }
                let upload = by_id.get(&id).map(|u| &uploads[*u]);
                let deleted = deletes.get(&id);
                if found {
                    if let Some(d) = deleted.filter(|d| d.ok_ms.is_some_and(|ok| invoke.time_ms > ok)) {
                        let mut lines = d.lines.clone();
                        lines.push(end.index);
                        push(
                            AnomalyKind::ResurrectedDelete,
                            format!("{id} is readable after its delete returned ok"),
                            lines,
                        );
                    }
                    let expected = text(&end.value, "expected_sha256");
                    let expected = if expected.is_empty() {
                        upload.map(|u| u.sha256.clone()).unwrap_or_default()
                    } else {
                        expected
                    };
                    let got = text(&end.value, "sha256");
                    if !expected.is_empty() && got != expected {
                        let kind = match (invoke.f.as_str(), upload.and_then(|u| u.outcome)) {
                            ("final-read", Some(Kind::Info)) => AnomalyKind::PartialFile,
                            ("final-read", _) => AnomalyKind::CorruptFile,
                            _ => AnomalyKind::CorruptRead,
                        };
                        let mut lines = vec![end.index];
                        if let Some(u) = upload {
                            lines.insert(0, u.invoke_line);
                        }
                        push(
                            kind,
                            format!(
                                "{id}: read {} bytes with sha256 {got}, expected {expected}",
                                num(&end.value, "size")
                            ),
                            lines,
                        );
                    }
                } else if let Some(u) = upload.filter(|u| u.outcome == Some(Kind::Ok) && u.end_ms < invoke.time_ms) {
                    // Not found: fine if a delete may have run first.
                    let delete_possible = deleted.is_some_and(|d| d.invoke_ms < end.time_ms);
                    if !delete_possible {
                        push(
                            AnomalyKind::LostUpload,
                            format!("{} ({id}) was acknowledged and never deleted, but a read found nothing", u.name),
                            vec![u.invoke_line, u.end_line, end.index],
                        );
                    }
                }
            }
            "check" => {
                let under = num(&end.value, "under_replicated") + num(&end.value, "lost");
                if under > 0 {
                    push(AnomalyKind::UnderReplicated, format!("after healing: {}", end.value), vec![end.index]);
                }
                let mismatches = end.value.get("disk_mismatches").and_then(Value::as_array).map_or(0, Vec::len);
                if mismatches > 0 {
                    push(
                        AnomalyKind::DiskDisagrees,
                        format!("metadata and disks disagree: {}", end.value),
                        vec![end.index],
                    );
                }
            }
            _ => {}
        }
    }

    for e in history.iter().filter(|e| e.f == "crashed") {
        push(AnomalyKind::ServiceCrashed, format!("a service exited on its own: {}", e.value), vec![e.index]);
    }

    // Pass 3: the end state of every upload.
    let have_final = history.iter().any(|e| e.f == "final-list" && e.kind == Kind::Ok);
    if have_final {
        for u in &uploads {
            let id = u
                .file_id
                .clone()
                .or_else(|| by_id.iter().find(|(_, i)| uploads[**i].name == u.name).map(|(id, _)| id.clone()));
            let listed = id.as_ref().is_some_and(|id| final_listed.contains_key(id));
            let delete = id.as_ref().and_then(|id| deletes.get(id));
            match u.outcome {
                Some(Kind::Ok) if delete.is_none() && !listed => push(
                    AnomalyKind::LostUpload,
                    format!(
                        "{} ({}) was acknowledged but is not listed at the end",
                        u.name,
                        id.clone().unwrap_or_default()
                    ),
                    vec![u.invoke_line, u.end_line],
                ),
                Some(Kind::Ok) if delete.is_none() => {
                    // A final read that was never made (a run cut short)
                    // proves nothing either way; one that found nothing does.
                    let read = id.as_ref().and_then(|id| final_reads.get(id));
                    if read.is_some_and(|r| !r.value.get("found").and_then(Value::as_bool).unwrap_or(true)) {
                        push(
                            AnomalyKind::LostUpload,
                            format!("{} was acknowledged and is listed but cannot be read at the end", u.name),
                            vec![u.invoke_line, u.end_line],
                        );
                    }
                }
                _ => {}
            }
            if let (Some(id), Some(d)) = (&id, delete) {
                if d.ok_ms.is_some() && listed {
                    let mut lines = d.lines.clone();
                    lines.extend(final_listed.get(id));
                    push(
                        AnomalyKind::ResurrectedDelete,
                        format!("{} ({id}) is listed at the end after its delete returned ok", u.name),
                        lines,
                    );
                }
            }
            if u.outcome == Some(Kind::Info) && listed && u.size > 0 {
                // Present: the final read must be complete (checked above by
                // its checksum); a listing with another size is partial too.
                if let Some(line) = id.as_ref().and_then(|id| final_listed.get(id)) {
                    let size = history[*line]
                        .value
                        .get("files")
                        .and_then(Value::as_array)
                        .and_then(|files| files.iter().find(|f| text(f, "name") == u.name))
                        .map(|f| num(f, "size"));
                    if size.is_some_and(|s| s != u.size) {
                        push(
                            AnomalyKind::PartialFile,
                            format!("{} is listed with {} of {} bytes", u.name, size.unwrap_or(0), u.size),
                            vec![u.invoke_line, *line],
                        );
                    }
                }
            }
        }
    }
    anomalies.sort_by_key(|a| (a.kind.clone(), a.lines.clone()));
    anomalies.dedup_by(|a, b| a.kind == b.kind && a.detail == b.detail);
    report.anomalies = anomalies;
    report
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    struct H(Vec<Entry>);

    impl H {
        fn new() -> Self {
            H(Vec::new())
        }
        fn add(&mut self, process: &str, kind: Kind, f: &str, value: Value) -> &mut Self {
            let index = self.0.len();
            self.0.push(Entry { index, time_ms: index as u64 * 10, process: process.into(), kind, f: f.into(), value });
            self
        }
        fn upload(&mut self, p: &str, name: &str, sha: &str, outcome: Kind, id: &str) -> &mut Self {
            self.add(p, Kind::Invoke, "upload", json!({"name": name, "sha256": sha, "size": 10}));
            self.add(p, outcome, "upload", json!({"file_id": id}))
        }
        fn final_state(&mut self, files: Value, reads: &[(&str, bool, &str, u64)]) -> &mut Self {
            self.add("final", Kind::Invoke, "final-list", json!({}));
            self.add("final", Kind::Ok, "final-list", json!({ "files": files }));
            for (id, found, sha, size) in reads {
                self.add("final", Kind::Invoke, "final-read", json!({"file_id": id}));
                self.add("final", Kind::Ok, "final-read", json!({"found": found, "sha256": sha, "size": size}));
            }
            self
        }
        fn kinds(&self) -> Vec<AnomalyKind> {
            check(&self.0).anomalies.into_iter().map(|a| a.kind).collect()
        }
    }

    #[test]
    fn a_clean_history_is_valid() {
        let mut h = H::new();
        h.upload("c1", "a", "s1", Kind::Ok, "A")
            .upload("c2", "b", "s2", Kind::Info, "")
            .add("c1", Kind::Invoke, "delete", json!({"file_id": "A"}))
            .add("c1", Kind::Ok, "delete", json!({}))
            .add("nemesis", Kind::Info, "kill", json!({"target": "controller-1"}))
            .final_state(json!([{"id": "B", "name": "b", "size": 10}]), &[("B", true, "s2", 10)]);
        let report = check(&h.0);
        assert!(report.valid(), "{:?}", report.anomalies);
        assert_eq!(report.faults.get("kill"), Some(&1));
        assert_eq!(report.ops.get(&("upload".into(), "info".into())), Some(&1));
    }

    #[test]
    fn reports_a_lost_acknowledged_upload() {
        let mut h = H::new();
        h.upload("c1", "a", "s1", Kind::Ok, "A").final_state(json!([]), &[]);
        assert_eq!(h.kinds(), vec![AnomalyKind::LostUpload]);
        // Also when a read during the run finds nothing.
        let mut h = H::new();
        h.upload("c1", "a", "s1", Kind::Ok, "A").add("c2", Kind::Invoke, "download", json!({"file_id": "A"})).add(
            "c2",
            Kind::Ok,
            "download",
            json!({"found": false}),
        );
        assert_eq!(h.kinds(), vec![AnomalyKind::LostUpload]);
    }

    #[test]
    fn reports_a_partial_file() {
        let mut h = H::new();
        h.upload("c1", "a", "s1", Kind::Info, "")
            .final_state(json!([{"id": "A", "name": "a", "size": 4}]), &[("A", true, "other", 4)]);
        let kinds = h.kinds();
        assert!(kinds.contains(&AnomalyKind::PartialFile), "{kinds:?}");
        assert!(kinds.iter().all(|k| *k == AnomalyKind::PartialFile), "{kinds:?}");
    }

    #[test]
    fn reports_a_resurrected_delete() {
        let mut h = H::new();
        h.upload("c1", "a", "s1", Kind::Ok, "A")
            .add("c1", Kind::Invoke, "delete", json!({"file_id": "A"}))
            .add("c1", Kind::Ok, "delete", json!({}))
            .add("c2", Kind::Invoke, "list", json!({}))
            .add("c2", Kind::Ok, "list", json!({"files": [{"id": "A", "name": "a", "size": 10}]}));
        assert_eq!(h.kinds(), vec![AnomalyKind::ResurrectedDelete]);
        let mut h = H::new();
        h.upload("c1", "a", "s1", Kind::Ok, "A")
            .add("c1", Kind::Invoke, "delete", json!({"file_id": "A"}))
            .add("c1", Kind::Ok, "delete", json!({}))
            .final_state(json!([{"id": "A", "name": "a", "size": 10}]), &[("A", true, "s1", 10)]);
        assert!(h.kinds().contains(&AnomalyKind::ResurrectedDelete));
    }

    #[test]
    fn a_delete_in_flight_excuses_a_missing_file() {
        let mut h = H::new();
        h.upload("c1", "a", "s1", Kind::Ok, "A")
            .add("c1", Kind::Invoke, "delete", json!({"file_id": "A"}))
            .add("c2", Kind::Invoke, "download", json!({"file_id": "A"}))
            .add("c2", Kind::Ok, "download", json!({"found": false}))
            .add("c1", Kind::Info, "delete", json!({}))
            .final_state(json!([]), &[]);
        assert!(h.kinds().is_empty(), "{:?}", h.kinds());
    }

    #[test]
    fn reports_corrupt_reads_phantoms_failed_uploads_and_replication() {
        let mut h = H::new();
        h.upload("c1", "a", "s1", Kind::Ok, "A")
            .upload("c1", "b", "s2", Kind::Fail, "")
            .add("c2", Kind::Invoke, "download", json!({"file_id": "A"}))
            .add("c2", Kind::Ok, "download", json!({"sha256": "bad", "size": 10}))
            .add("c2", Kind::Invoke, "list", json!({}))
            .add("c2", Kind::Ok, "list", json!({"files": [{"id": "B", "name": "b"}, {"id": "Z", "name": "zzz"}]}))
            .add("final", Kind::Invoke, "check", json!({}))
            .add("final", Kind::Ok, "check", json!({"under_replicated": 1, "lost": 0, "disk_mismatches": ["x"]}));
        let mut kinds = h.kinds();
        kinds.sort();
        assert_eq!(
            kinds,
            vec![
                AnomalyKind::FailedUploadVisible,
                AnomalyKind::PhantomFile,
                AnomalyKind::CorruptRead,
                AnomalyKind::UnderReplicated,
                AnomalyKind::DiskDisagrees
            ]
        );
    }

    #[test]
    fn reports_a_service_that_exited_on_its_own_not_one_the_nemesis_killed() {
        let mut h = H::new();
        h.upload("c1", "a", "s1", Kind::Ok, "A")
            .add("nemesis", Kind::Info, "kill", json!({"target": "dn2"}))
            .add("nemesis", Kind::Info, "restart", json!({"target": "dn2"}))
            .final_state(json!([{"id": "A", "name": "a", "size": 10}]), &[("A", true, "s1", 10)]);
        assert!(h.kinds().is_empty(), "{:?}", h.kinds());
        h.add("supervisor", Kind::Info, "crashed", json!({"target": "controller-2", "status": "signal: 6 (SIGABRT)"}));
        assert_eq!(h.kinds(), vec![AnomalyKind::ServiceCrashed]);
    }
}
