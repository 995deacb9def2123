//! [`Shutdown`]: the one owner of stopping the live topology. Stages stop in the order data
//! flows, each when the one before it has handed on everything it had: the committer takes no
//! new request and commits what was queued; its committed-groups channel closing ends the
//! forwarder, whose pipeline input closing ends the dispatcher (which flushes the stores'
//! outputs to the trail feed) and the partitions; the alert book thread ends once the last
//! rule output is numbered and published, and the trail feed once the last position is
//! appended, when it seals the trail store at its checkpoint. The owner waits for both
//! threads and for the alert writer to store everything published, then reports.
//!
//! Nothing acknowledged depends on this: acks follow durability, and a process killed instead
//! recovers from the log. What an orderly stop saves is the next start's work (the trail store
//! sealed at the log's end, no alert left for the writer) and an honest exit status.

use crate::alerts::LiveAlerts;
use crate::log::CommitHandle;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What stopping found; printed as the server's last line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stopped {
    /// Stages that ended in order within the time allowed.
    pub drained: Vec<&'static str>,
    /// Stages still running when the time ran out (their work is recovered from the log at
    /// the next start).
    pub timed_out: Vec<&'static str>,
    /// The last alert event number published, every one stored.
    pub alerts_stored_through: i64,
}

/// The live topology's stop, held by whoever runs it (`tagstream serve`).
pub struct Shutdown {
    commit: CommitHandle,
    alerts: Arc<LiveAlerts>,
    /// The threads at the end of the flow, in the order they are waited for.
    threads: Vec<(&'static str, JoinHandle<()>)>,
}

impl Shutdown {
    pub(crate) fn new(
        commit: CommitHandle,
        alerts: Arc<LiveAlerts>,
        threads: Vec<(&'static str, JoinHandle<()>)>,
    ) -> Self {
        Self {
            commit,
            alerts,
            threads,
        }
    }

    /// Stops the topology (see the module doc), waiting at most `within` for the stages.
    pub async fn run(self, within: Duration) -> Stopped {
        let Shutdown {
            commit,
            alerts,
            threads,
        } = self;
        commit.close().await;
        let deadline = tokio::time::Instant::now() + within;
        let mut drained = Vec::new();
        let mut timed_out = Vec::new();
        for (name, thread) in threads {
            let joined = tokio::task::spawn_blocking(move || thread.join());
            match tokio::time::timeout_at(deadline, joined).await {
                Ok(Ok(Ok(()))) => drained.push(name),
                Ok(Ok(Err(_))) | Ok(Err(_)) => {
                    tracing::error!(stage = name, "stage panicked while stopping");
                    timed_out.push(name);
                }
                Err(_) => {
                    tracing::error!(stage = name, "stage did not stop in time");
                    timed_out.push(name);
                }
            }
        }
        let store = alerts.clone();
        let stored = tokio::task::spawn_blocking(move || store.sync_store_blocking());
        match tokio::time::timeout_at(deadline, stored).await {
            Ok(Ok(())) => drained.push("alert-writer"),
            _ => timed_out.push("alert-writer"),
        }
        Stopped {
            drained,
            timed_out,
            alerts_stored_through: alerts.published_through(),
        }
    }
}
