//! The retention schedule: the purge job run a minute after start, then every
//! `run_every_hours` (0: never), on a blocking thread so the purge's I/O stays off the runtime.

use crate::retention::Purger;
use std::sync::Arc;

/// Runs the purge a minute after start, then every `run_every_hours` (0: never).
pub fn spawn_retention_schedule(purger: Arc<Purger>) {
    let hours = purger.config.run_every_hours;
    if hours == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut wait = std::time::Duration::from_secs(60);
        loop {
            tokio::time::sleep(wait).await;
            wait = std::time::Duration::from_secs(u64::from(hours) * 3600);
            let job = purger.clone();
            match tokio::task::spawn_blocking(move || {
                job.run(super::assembly::now_ms(), "schedule")
            })
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
