//! Upload hooks: a command that may veto a file before it is stored (`--scan-cmd`: a virus
//! scanner, `ffprobe`, a script) and commands told after a file was stored or deleted
//! (`--on-upload`, `--on-delete`: a notification, a sync).
//!
//! Never a shell: a command is its words (quotes group words; nothing is expanded), run with a
//! cleared environment that holds only `PIDROP_*` values pidrop made (stored name, path, size,
//! sha256, type) and a fixed `PATH`. What a client chose — the original name, the fields — reaches a hook only as
//! a JSON record on its stdin. Each run is its own process group, killed whole at its timeout;
//! its output is capped (64 KiB) and logged.
//!
//! The scan runs on the request's time, after the file is durable in the state dir and before
//! it gets its stored name, at most `--max-scans` at once (a scanner is heavy on a Pi); it fails
//! closed: a veto is 422, a timeout or a command that cannot run is 503, and nothing is stored.
//! The other hooks run from the after-commit queue, never holding a request.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::gate::Gate;
use crate::json::{self, Obj};
use crate::storage::Meta;

/// Output kept from one run.
const OUTPUT_CAP: usize = 64 << 10;

/// A command line split into words: `a "b c" d` → `a`, `b c`, `d`. `None` if a quote is open.
pub fn split_command(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// What one run of a hook came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Ran {
    /// Exit status 0.
    Ok,
    /// Another exit status (or a signal): the first line of its output.
    Failed(String),
    /// Killed at the timeout.
    TimedOut,
    /// Could not be started.
    NotStarted(String),
}

/// What a hook is told about a file.
pub struct Event<'a> {
    pub event: &'static str,
    pub meta: &'a Meta,
    pub path: &'a Path,
}

impl Event<'_> {
    fn env(&self) -> [(&'static str, String); 7] {
        [
            // Fixed, not inherited: a command named without a path is found here.
            ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
            ("PIDROP_EVENT", self.event.to_string()),
            ("PIDROP_NAME", self.meta.name.clone()),
            ("PIDROP_PATH", self.path.display().to_string()),
            ("PIDROP_SIZE", self.meta.size.to_string()),
            ("PIDROP_SHA256", self.meta.sha256.clone()),
            ("PIDROP_TYPE", self.meta.mime.clone()),
        ]
    }

    /// The JSON record on the hook's stdin: everything, the client's own words included.
    fn record(&self) -> String {
        let fields = self
            .meta
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()));
        Obj::new()
            .str("event", self.event)
            .str("name", &self.meta.name)
            .str("original_name", &self.meta.original_name)
            .num("size", self.meta.size)
            .str("type", &self.meta.mime)
            .str("sha256", &self.meta.sha256)
            .str("path", &self.path.display().to_string())
            .raw("fields", &json::string_map(fields))
            .finish()
    }
}

/// Runs `argv` (with `extra` appended) for `event`, killing its process group at `timeout`.
/// Returns how it ended and its output (capped).
pub fn run(
    argv: &[String],
    extra: Option<&Path>,
    event: &Event<'_>,
    timeout: Duration,
) -> (Ran, String) {
    let Some((program, args)) = argv.split_first() else {
        return (Ran::NotStarted("empty command".into()), String::new());
    };
    let (mut out_r, out_w) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return (Ran::NotStarted(e.to_string()), String::new()),
    };
    let err_w = match out_w.try_clone() {
        Ok(w) => w,
        Err(e) => return (Ran::NotStarted(e.to_string()), String::new()),
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .args(extra)
        .env_clear()
        .envs(event.env())
        .stdin(Stdio::piped())
        .stdout(out_w)
        .stderr(err_w)
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (Ran::NotStarted(format!("{program}: {e}")), String::new()),
    };
    drop(cmd); // our copies of the pipe's write end: the reader sees EOF when the group exits
    let record = event.record();
    let stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(mut s) = stdin {
            let _ = s.write_all(record.as_bytes());
        }
    });
    let reader = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = out_r.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = OUTPUT_CAP.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        String::from_utf8_lossy(&kept).into_owned()
    });
    let ran = wait(&mut child, timeout);
    let _ = writer.join();
    let output = reader.join().unwrap_or_default();
    (ran, output)
}

/// Waits for the child; at the deadline kills its whole process group.
fn wait(child: &mut std::process::Child, timeout: Duration) -> Ran {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                // Whatever it left running in its group goes with it.
                crate::sys::kill_process_group(child.id());
                return if status.success() {
                    Ran::Ok
                } else {
                    Ran::Failed(status.to_string())
                };
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                crate::sys::kill_process_group(child.id());
                let _ = child.wait();
                return Ran::TimedOut;
            }
        }
    }
}

/// The first line of a hook's output, safe to show a client: control characters removed, at
/// most 200 characters.
pub fn first_line(output: &str) -> String {
    output
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

/// Scans running at once.
static SCANS: Gate = Gate::new();

/// Runs the scan command on a file about to be stored, waiting for a free scan slot first
/// (`limit` at once).
pub fn scan(argv: &[String], event: &Event<'_>, timeout: Duration, limit: usize) -> (Ran, String) {
    let _pass = SCANS.enter(limit);
    run(argv, Some(event.path), event, timeout)
}

/// Post-commit hook runs that did not succeed, since start (`/metrics`).
static FAILURES: AtomicU64 = AtomicU64::new(0);

pub fn failures() -> u64 {
    FAILURES.load(Ordering::Relaxed)
}

/// Runs a post-commit hook and logs how it went (from the after-commit queue).
pub fn notify(argv: &[String], event: &Event<'_>, timeout: Duration) {
    let (ran, output) = run(argv, None, event, timeout);
    let output = output.trim_end();
    match ran {
        Ran::Ok if output.is_empty() => {}
        Ran::Ok => log::info!("{} hook for {}: {output}", event.event, event.meta.name),
        other => {
            FAILURES.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "{} hook for {} did not succeed ({other:?}): {output}",
                event.event,
                event.meta.name
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_split_into_words_without_a_shell() {
        let w = |s: &str| split_command(s);
        assert_eq!(
            w("clamdscan --fdpass --no-summary"),
            Some(vec![
                "clamdscan".into(),
                "--fdpass".into(),
                "--no-summary".into()
            ])
        );
        assert_eq!(
            w(r#"/bin/notify "a b" 'c "d"' '' $HOME;rm"#),
            Some(vec![
                "/bin/notify".into(),
                "a b".into(),
                "c \"d\"".into(),
                String::new(),
                "$HOME;rm".into()
            ])
        );
        assert_eq!(w("a 'open"), None);
        assert_eq!(w("   "), Some(vec![]));
        assert_eq!(
            first_line("\n  infected: X\x1b[31m\nmore"),
            "infected: X[31m"
        );
    }
}
