//! Sync status shown by the UI, pure.

/// Where the outbox lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageState {
    /// Still opening IndexedDB.
    #[default]
    Opening,
    IndexedDb,
    /// IndexedDB unavailable: events are kept in memory only and lost when the page closes.
    MemoryOnly,
}

/// Lines kept in the device log.
pub const LOG_LINES: usize = 50;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncStatus {
    /// Events in the outbox not yet acknowledged (all sessions).
    pub unsynced: u32,
    /// `Date.now()` of the last acknowledged batch.
    pub last_sync_ms: Option<f64>,
    /// Last upload or storage error; `None` after a success.
    pub last_error: Option<String>,
    pub sending: bool,
    /// `Date.now()` of the next scheduled retry after a failure.
    pub retry_at_ms: Option<f64>,
    pub online: bool,
    pub storage: StorageState,
    /// `navigator.storage.persist()` answer; `None` while unknown or unsupported.
    pub persisted: Option<bool>,
    /// Events the server refused (dropped after logging the reason).
    pub rejected_total: u32,
    /// Device log, oldest first, at most [`LOG_LINES`].
    pub log: Vec<String>,
}

impl SyncStatus {
    /// Append a device-log line, dropping the oldest beyond [`LOG_LINES`].
    pub fn log_line(&mut self, line: String) {
        if self.log.len() >= LOG_LINES {
            let excess = self.log.len() + 1 - LOG_LINES;
            self.log.drain(..excess);
        }
        self.log.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keeps_the_newest_lines() {
        let mut s = SyncStatus::default();
        for i in 0..(LOG_LINES + 7) {
            s.log_line(format!("line {i}"));
        }
        assert_eq!(s.log.len(), LOG_LINES);
        assert_eq!(s.log[0], "line 7");
        assert_eq!(s.log.last().map(String::as_str), Some("line 56"));
    }
}
