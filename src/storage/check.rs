//! The consistency check between the catalogue and the upload dir: data files without a row
//! (a crash between a commit's renames and its transaction) and rows without a data file (a
//! file removed by hand). Run in the background after every start, slowly, and by hand with
//! `pidrop check [--repair]`.
//!
//! A commit in flight has renamed its files but not yet written its rows, so a data file
//! without a row is removed only if it is older than `before` (the start that launched the
//! check) *and* still has no row after a grace period: file times come from the kernel's coarse
//! clock, a tick behind, so a commit made right at start could otherwise look old. Rows go the
//! other way round: a delete unlinks the file before the row, so a row without a file is only
//! ever a delete in progress or a file removed by hand; dropping it is right either way.

use std::io;
use std::time::{Duration, SystemTime};

use super::Store;

/// Entries looked at between two pauses of the background check.
const STEP: usize = 256;
/// How long a data file without a row must stay so, counted from `before`, before it is taken
/// for a crash's leftover: far longer than any commit takes between its rename and its row.
const GRACE: Duration = Duration::from_secs(10);
/// Files without a row noted for removal at most (the rest wait for the next check).
const MAX_CANDIDATES: usize = 100_000;

/// What a check found, and what it repaired.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub files_without_row: u64,
    pub rows_without_file: u64,
    pub removed_files: u64,
    pub dropped_rows: u64,
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} data file(s) without a catalogue row ({} removed), {} row(s) without a data file ({} dropped)",
            self.files_without_row, self.removed_files, self.rows_without_file, self.dropped_rows
        )
    }
}

impl Store {
    /// Walks the upload dir and the catalogue; with `repair`, removes data files without a row
    /// (older than `before`) and drops rows without a file. Sleeps `pace` every few hundred
    /// entries, so the background run never competes with uploads on an SD card.
    pub fn check(
        &self,
        repair: bool,
        before: SystemTime,
        pace: Duration,
    ) -> io::Result<CheckReport> {
        let mut report = CheckReport::default();
        let orphans = self.files_without_rows(before, pace, &mut report)?;
        if repair {
            self.remove_orphans(orphans, before, &mut report)?;
        }
        self.rows_without_files(repair, pace, &mut report)?;
        Ok(report)
    }

    /// Data files without a row, older than `before`: the candidates for removal.
    fn files_without_rows(
        &self,
        before: SystemTime,
        pace: Duration,
        report: &mut CheckReport,
    ) -> io::Result<Vec<String>> {
        let mut candidates = Vec::new();
        let mut i = 0;
        self.blobs.each(&mut |blob| {
            pause(i, pace);
            i += 1;
            if self
                .catalogue
                .contains(&blob.name)
                .map_err(io::Error::other)?
            {
                return Ok(());
            }
            report.files_without_row += 1;
            if blob.modified < before && candidates.len() < MAX_CANDIDATES {
                candidates.push(blob.name);
            }
            Ok(())
        })?;
        Ok(candidates)
    }

    /// Removes the candidates that still have no row after the grace period.
    fn remove_orphans(
        &self,
        candidates: Vec<String>,
        before: SystemTime,
        report: &mut CheckReport,
    ) -> io::Result<()> {
        if candidates.is_empty() {
            return Ok(());
        }
        let waited = SystemTime::now().duration_since(before).unwrap_or_default();
        let wait = GRACE.saturating_sub(waited);
        log::info!(
            "{} data file(s) without a catalogue row; removing those still without one in {}s",
            candidates.len(),
            wait.as_secs()
        );
        std::thread::sleep(wait);
        for name in candidates {
            if self.catalogue.contains(&name).map_err(io::Error::other)? {
                report.files_without_row -= 1; // its commit has landed meanwhile
                continue;
            }
            if self.blobs.remove(&name).is_ok_and(|removed| removed) {
                log::warn!("removed {name}: a data file without a catalogue row (an upload cut off by a crash)");
                report.removed_files += 1;
            }
        }
        Ok(())
    }

    /// Rows whose data file is gone; dropped with `repair`.
    fn rows_without_files(
        &self,
        repair: bool,
        pace: Duration,
        report: &mut CheckReport,
    ) -> io::Result<()> {
        let mut after = String::new();
        let mut i = 0;
        loop {
            let names = self
                .catalogue
                .names_after(&after, STEP)
                .map_err(io::Error::other)?;
            let Some(last) = names.last() else { break };
            after = last.clone();
            for name in names {
                pause(i, pace);
                i += 1;
                if self.blobs.exists(&name)? {
                    continue;
                }
                report.rows_without_file += 1;
                if repair && self.catalogue.delete(&name).map_err(io::Error::other)? {
                    log::warn!("dropped the catalogue row of {name}: its data file is gone");
                    report.dropped_rows += 1;
                }
            }
        }
        Ok(())
    }
}

fn pause(i: usize, pace: Duration) {
    if i > 0 && i.is_multiple_of(STEP) && !pace.is_zero() {
        std::thread::sleep(pace);
    }
}
