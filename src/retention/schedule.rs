//! The purge job's schedule: the job runs a minute after start, then every `run_every_hours`
//! (0: never), on a blocking thread so the purge's I/O stays off the runtime; in a cluster, only
//! on the node holding the retention lease at that moment. The job owns its schedule, as the
//! stores own their background work.

use super::purge::{wall_clock_ms, Purger};
use std::sync::Arc;

impl Purger {
    /// Runs the purge a minute after start, then every `run_every_hours` (0: never).
    pub fn spawn_schedule(self: &Arc<Self>) {
        let hours = self.config.run_every_hours;
        if hours == 0 {
            return;
        }
        let purger = self.clone();
        tokio::spawn(async move {
            let mut wait = std::time::Duration::from_secs(60);
            loop {
                tokio::time::sleep(wait).await;
                wait = std::time::Duration::from_secs(u64::from(hours) * 3600);
                if !purger.may_run() {
                    // Another node holds the retention lease and purges the shared stream.
                    continue;
                }
                let job = purger.clone();
                match tokio::task::spawn_blocking(move || job.run(wall_clock_ms(), "schedule"))
                    .await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "scheduled retention purge stopped; the next run repeats it")
                    }
                    Err(e) => tracing::error!(error = %e, "scheduled retention purge task failed"),
                }
            }
        });
    }
}
