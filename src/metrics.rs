//! `GET /metrics`: what pidrop has done and how loaded it is, in the Prometheus text format
//! (version 0.0.4), for a Grafana panel on the Pi owner's side. Counters since start (files and
//! bytes stored by how they came, refusals by error code, answers by status class, a histogram
//! of the time to handle a request) and gauges read when scraped (workers busy, uploads in
//! flight, queue depth, free bytes, catalogue size, unfinished resumable uploads, the
//! after-commit queue). Fixed memory: every label set is known in advance (error codes are
//! `&'static str`s from one enum).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How a stored file came.
#[derive(Clone, Copy)]
pub enum Via {
    Multipart,
    Put,
    Tus,
    /// Straight from the browser to the bucket (`--s3-direct`).
    Direct,
}

const VIAS: [&str; 4] = ["multipart", "put", "tus", "direct"];
/// Upper bounds of the request-duration buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 300.0];

#[derive(Default)]
pub struct Metrics {
    files: [AtomicU64; VIAS.len()],
    bytes: [AtomicU64; VIAS.len()],
    /// Answers by status class: 1xx … 5xx.
    answers: [AtomicU64; 5],
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    /// Requests per bucket (not cumulative; summed when rendered), the last for +Inf.
    durations: [AtomicU64; BUCKETS.len() + 1],
    duration_micros: AtomicU64,
}

/// Values read when scraped.
pub struct Gauges {
    pub busy_workers: u64,
    pub uploads_in_flight: u64,
    pub queued_connections: u64,
    pub free_bytes: u64,
    pub files: u64,
    pub bytes: u64,
    pub unfinished_uploads: u64,
    pub after_commit_waiting: u64,
    pub after_commit_dropped: u64,
    pub hook_failures: u64,
    pub thumbnail_failures: u64,
}

impl Metrics {
    /// A file was stored.
    pub fn stored(&self, via: Via, size: u64) {
        self.files[via as usize].fetch_add(1, Ordering::Relaxed);
        self.bytes[via as usize].fetch_add(size, Ordering::Relaxed);
    }

    /// A request was answered with `status` (an error's `code` when it was one) after `took`.
    pub fn answered(&self, status: u16, code: Option<&'static str>, took: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.answers[class].fetch_add(1, Ordering::Relaxed);
        if let Some(code) = code {
            let mut r = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
            *r.entry(code).or_insert(0) += 1;
        }
        let secs = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.durations[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The text a scraper reads.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        family(
            &mut out,
            "pidrop_files_stored_total",
            "counter",
            "Files stored since start, by how they came.",
        );
        for (i, via) in VIAS.iter().enumerate() {
            let _ = writeln!(
                out,
                "pidrop_files_stored_total{{via=\"{via}\"}} {}",
                load(&self.files[i])
            );
        }
        family(
            &mut out,
            "pidrop_bytes_stored_total",
            "counter",
            "Bytes stored since start, by how they came.",
        );
        for (i, via) in VIAS.iter().enumerate() {
            let _ = writeln!(
                out,
                "pidrop_bytes_stored_total{{via=\"{via}\"}} {}",
                load(&self.bytes[i])
            );
        }
        family(
            &mut out,
            "pidrop_responses_total",
            "counter",
            "Responses since start, by status class.",
        );
        for (i, a) in self.answers.iter().enumerate() {
            let _ = writeln!(
                out,
                "pidrop_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                load(a)
            );
        }
        family(
            &mut out,
            "pidrop_refusals_total",
            "counter",
            "Error responses since start, by error code.",
        );
        let refusals = self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (code, n) in refusals {
            let _ = writeln!(out, "pidrop_refusals_total{{code=\"{code}\"}} {n}");
        }
        self.render_durations(&mut out);
        gauges(&mut out, g);
        out
    }

    fn render_durations(&self, out: &mut String) {
        let name = "pidrop_request_duration_seconds";
        family(
            out,
            name,
            "histogram",
            "Time to handle a request (head read to response ready).",
        );
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.durations[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        cumulative += self.durations[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.duration_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauges(out: &mut String, g: &Gauges) {
    let rows: [(&str, &str, &str, u64); 11] = [
        (
            "pidrop_busy_workers",
            "gauge",
            "Workers serving a connection.",
            g.busy_workers,
        ),
        (
            "pidrop_uploads_in_flight",
            "gauge",
            "Workers reading an upload's body.",
            g.uploads_in_flight,
        ),
        (
            "pidrop_queued_connections",
            "gauge",
            "Accepted connections waiting for a worker.",
            g.queued_connections,
        ),
        (
            "pidrop_free_bytes",
            "gauge",
            "Free bytes where uploads are stored.",
            g.free_bytes,
        ),
        (
            "pidrop_catalogue_files",
            "gauge",
            "Files in the catalogue.",
            g.files,
        ),
        (
            "pidrop_catalogue_bytes",
            "gauge",
            "Bytes of the files in the catalogue.",
            g.bytes,
        ),
        (
            "pidrop_unfinished_uploads",
            "gauge",
            "Resumable uploads begun and not finished.",
            g.unfinished_uploads,
        ),
        (
            "pidrop_after_commit_waiting",
            "gauge",
            "Jobs (thumbnails, hooks) waiting in the after-commit queue.",
            g.after_commit_waiting,
        ),
        (
            "pidrop_after_commit_dropped_total",
            "counter",
            "Jobs dropped because the after-commit queue was full.",
            g.after_commit_dropped,
        ),
        (
            "pidrop_hook_failures_total",
            "counter",
            "Upload and delete hook runs that failed or timed out.",
            g.hook_failures,
        ),
        (
            "pidrop_thumbnail_failures_total",
            "counter",
            "Images that got no thumbnail (undecodable, too large, a decoder panic).",
            g.thumbnail_failures,
        ),
    ];
    for (name, kind, help, v) in rows {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name} {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.stored(Via::Tus, 10);
        m.stored(Via::Tus, 5);
        m.answered(201, None, Duration::from_millis(3));
        m.answered(415, Some("type_not_allowed"), Duration::from_secs(400));
        let g = Gauges {
            busy_workers: 1,
            uploads_in_flight: 0,
            queued_connections: 0,
            free_bytes: 7,
            files: 2,
            bytes: 15,
            unfinished_uploads: 0,
            after_commit_waiting: 0,
            after_commit_dropped: 0,
            hook_failures: 0,
            thumbnail_failures: 0,
        };
        let text = m.render(&g);
        assert!(
            text.contains("pidrop_files_stored_total{via=\"tus\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("pidrop_bytes_stored_total{via=\"tus\"} 15\n"));
        assert!(text.contains("pidrop_refusals_total{code=\"type_not_allowed\"} 1\n"));
        assert!(text.contains("pidrop_responses_total{class=\"2xx\"} 1\n"));
        assert!(text.contains("pidrop_request_duration_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("pidrop_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("pidrop_request_duration_seconds_bucket{le=\"300\"} 1\n"));
        assert!(text.contains("pidrop_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("pidrop_request_duration_seconds_count 2\n"));
        assert!(text.contains("pidrop_free_bytes 7\n"));
    }
}
