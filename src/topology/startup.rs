//! Start-up: the log's views brought up to the log before anyone is let in. Every stored record
//! is replayed through the pipeline inline, into the live alert book as recovered
//! ([`replay_log_into`]); the control records met on the way rebuild the change history
//! ([`ChangeHistory`]) and give the users table and the alert and crime stores what they missed
//! ([`catch_up_users`]); the start-up import ([`startup_import`], [`legacy_users`]) says what
//! must be written to the log as control records before serving.

use super::inline::PipelineDesc;
use crate::config::ServerConfig;
use crate::formats::orders_file::parse_orders;
use crate::model::{Change, LogEntry};
use crate::orders::OrderBook;
use crate::pipeline::driver::InlineDriver;
use crate::pipeline::driver::OutputBatch;
use crate::pipeline::{Output, Provenance, Sink};
use crate::store::metadata::Metadata;
use anyhow::{Context, Result};
use std::sync::Arc;

/// The changes the start-up import writes to the log as control records: first what a metadata
/// database written before control records existed holds and the log lacks (a one-time
/// migration), then what `--orders` says that differs. Importing the same file again writes
/// nothing.
///
/// `purge_records` are the log's purge records: what they name is never written back (a
/// cluster node that was down while another purged still holds it in its metadata until it
/// follows them, and its `--orders` file may still list it).
pub fn startup_import(
    config: &ServerConfig,
    metadata: &Metadata,
    book: &OrderBook,
    purge_records: &[(u64, Arc<crate::model::ControlRecord>)],
) -> Result<Vec<(String, Change)>> {
    let mut changes = Vec::new();
    // A purge the log does not hold yet (a run stopped between its metadata transaction and
    // its log record, or a purge made before purges were log records).
    let mut purged = metadata
        .purged_records()
        .context("reading which records retention purged")?;
    let is_purged = |kind: &str, id: &str| purged.contains(&(kind.to_string(), id.to_string()));
    let activations: Vec<String> = book
        .activations()
        .filter(|a| is_purged("activation", &a.id))
        .map(|a| a.id.clone())
        .collect();
    let people: Vec<String> = book
        .people()
        .filter(|p| is_purged("person", &p.id))
        .map(|p| p.id.clone())
        .collect();
    if !activations.is_empty() || !people.is_empty() {
        changes.push((
            "retention".to_string(),
            Change::Purge {
                activations,
                people,
                windows: Vec::new(),
            },
        ));
    }
    for (_, control) in purge_records {
        if let Change::Purge {
            activations,
            people,
            ..
        } = &control.change
        {
            let named = |kind: &str, ids: &[String]| {
                ids.iter()
                    .map(|id| (kind.to_string(), id.clone()))
                    .collect::<Vec<_>>()
            };
            purged.extend(named("activation", activations));
            purged.extend(named("person", people));
        }
    }
    let legacy = metadata
        .orders_document()
        .context("reading people, activations and orders from the metadata database")?;
    for change in crate::orders::import::changes_for(book, &legacy) {
        if purged_name(&change, &purged).is_none() {
            changes.push(("migration".to_string(), change));
        }
    }
    if let Some(source) = &config.orders {
        let text = std::fs::read_to_string(source)
            .with_context(|| format!("reading orders {}", source.display()))?;
        let load = parse_orders(&text).with_context(|| format!("orders {}", source.display()))?;
        for e in &load.errors {
            tracing::warn!("{}: {e} (record skipped)", source.display());
        }
        // What the migration changes already count as in the book for the file's diff.
        let mut after = book.clone();
        for (i, (_, change)) in changes.iter().enumerate() {
            let record = crate::model::ControlRecord {
                recorded: 0,
                actor: String::new(),
                effective: None,
                change: change.clone(),
            };
            let _ = after.apply(i as u64, &record);
        }
        let actor = format!("import:{}", source.display());
        for change in crate::orders::import::changes_for(&after, &load.accepted) {
            if let Some(name) = purged_name(&change, &purged) {
                tracing::warn!(
                    "{}: {name} was purged by retention (record skipped)",
                    source.display()
                );
                continue;
            }
            changes.push((actor.clone(), change));
        }
    }
    Ok(changes)
}

/// `activation A1` when a change would bring back a record (or a record of a person) that
/// retention purged.
fn purged_name(
    change: &Change,
    purged: &std::collections::HashSet<(String, String)>,
) -> Option<String> {
    let is = |kind: &str, id: &str| purged.contains(&(kind.to_string(), id.to_string()));
    let (kind, id, person) = match change {
        Change::PutPerson { person } => ("person", person.id.as_str(), person.id.as_str()),
        Change::PutActivation { activation } => (
            "activation",
            activation.id.as_str(),
            activation.person.as_str(),
        ),
        Change::PutOrder { order } => ("order", order.id.as_str(), order.person.as_str()),
        Change::EndActivation { .. }
        | Change::Purge { .. }
        | Change::Redacted { .. }
        | Change::AlertAction { .. }
        | Change::HitReview { .. }
        | Change::PutUser { .. }
        | Change::DisableUser { .. }
        | Change::RevokeTag { .. }
        | Change::RotateTag { .. }
        | Change::TagCredentialState { .. }
        | Change::BindDevice { .. }
        | Change::UnbindDevice { .. }
        | Change::CrimeBatch { .. } => return None,
    };
    (is(kind, id) || is("person", person)).then(|| format!("{kind} {id}"))
}

/// Feeds every record stored in the log, in log order, through partitions on this thread (control
/// records rebuild people, activations and orders as they go): the rules' outputs to
/// `rules_out` (the alert book as recovered, not published; or, on a node owning some
/// partitions, `owned`'s, to be published), the stores' outputs (readings by activation) to
/// `stores`, exactly as live serving hands them on. Returns the partitions (to go live) and
/// (batches, readings) replayed.
#[allow(clippy::too_many_arguments)]
pub fn replay_log_into(
    records: impl Iterator<Item = Result<(u64, LogEntry)>>,
    stores: &mut dyn Sink,
    pipeline: crate::pipeline::PipelineConfig,
    rules: crate::rules::RulesConfig,
    partitions: usize,
    owned: Option<crate::model::tag_partition::PartitionSet>,
    rules_out: &mut dyn FnMut(OutputBatch),
    history: ChangeHistory,
) -> Result<(InlineDriver, (u64, u64), ChangeHistory)> {
    let mut sink = Split {
        rules: Vec::new(),
        from: Provenance::default(),
        stores,
    };
    // The log holds its own people, activations and orders: the pipeline starts with none.
    let driver = PipelineDesc {
        start: &crate::model::OrdersFile::default(),
        pipeline,
        rules,
        partitions,
    }
    .build(&mut sink);
    let mut driver = driver;
    if let Some(owned) = owned {
        driver.own_partitions(owned)?;
    }
    resume_log_into(driver, records, sink.stores, rules_out, history, (0, 0))
}

/// [`replay_log_into`] for a driver already part-way through the log (restored from a node
/// checkpoint, with the alert book and `history` as of the same record): feeds it `records`,
/// the rest of the log. `counted` are the (batches, readings) before them.
pub fn resume_log_into(
    mut driver: InlineDriver,
    records: impl Iterator<Item = Result<(u64, LogEntry)>>,
    stores: &mut dyn Sink,
    rules_out: &mut dyn FnMut(OutputBatch),
    mut history: ChangeHistory,
    counted: (u64, u64),
) -> Result<(InlineDriver, (u64, u64), ChangeHistory)> {
    let mut sink = Split {
        rules: Vec::new(),
        from: Provenance::default(),
        stores,
    };
    let (mut batches, mut readings) = counted;
    for item in records {
        let (record, entry) = item?;
        if let LogEntry::Batch(batch) = &entry {
            batches += 1;
            readings += batch.readings.len() as u64;
        }
        if let LogEntry::Control { record, control } = &entry {
            history.note(*record, control);
        }
        driver.feed_record(record, &entry, &mut sink);
        if sink.rules.len() >= 4096 {
            sink.stores.flush();
            rules_out(std::mem::take(&mut sink.rules));
        }
    }
    sink.stores.flush();
    rules_out(sink.rules);
    Ok((driver, (batches, readings), history))
}

/// The rules' outputs gathered for the alert book (each with its provenance), the stores'
/// handed on.
struct Split<'a> {
    rules: OutputBatch,
    /// Where the outputs emitted now come from.
    from: Provenance,
    stores: &'a mut dyn Sink,
}

impl Sink for Split<'_> {
    fn emit(&mut self, output: Output, cause_arrival_ms: Option<i64>) {
        if output.is_rule_output() {
            self.rules.push((output, cause_arrival_ms, self.from));
        } else {
            self.stores.emit(output, cause_arrival_ms);
        }
    }

    fn outputs_from(&mut self, provenance: Provenance) {
        self.from = provenance;
    }
}

/// Applies the user records from the users table's mark on (a crash between a user record's log
/// append and the table write, or a table rebuilt from nothing). A refused one is refused the
/// same way it was live.
pub fn catch_up_users(
    metadata: &Metadata,
    records: &[(u64, Arc<crate::model::ControlRecord>)],
) -> Result<()> {
    let below = metadata.users_applied_below()?;
    for (record, control) in records {
        if *record >= below && control.change.is_user() {
            if let Err(reason) = metadata.apply_user_record(*record, control)? {
                tracing::debug!(record, %reason, "user record refused at catch-up");
            }
        }
    }
    Ok(())
}

/// What `name` picks out of the records' changes (user names, tag ids).
fn named_in_log<'a>(
    records: &'a [(u64, Arc<crate::model::ControlRecord>)],
    name: impl Fn(&'a Change) -> Option<&'a str>,
) -> std::collections::HashSet<&'a str> {
    records
        .iter()
        .filter_map(|(_, c)| name(&c.change))
        .collect()
}

/// Users a metadata database written before users were log records holds and the log lacks:
/// written to the log once (the same digest again is accepted and changes nothing).
pub fn legacy_users(
    metadata: &Metadata,
    records: &[(u64, Arc<crate::model::ControlRecord>)],
) -> Result<Vec<(String, Change)>> {
    let in_log = named_in_log(records, |change| match change {
        Change::PutUser { user } => Some(user.name.as_str()),
        _ => None,
    });
    let mut changes = Vec::new();
    for (account, disabled) in metadata.user_accounts()? {
        if in_log.contains(account.name.as_str()) {
            continue;
        }
        let name = account.name.clone();
        changes.push(("migration".to_string(), Change::PutUser { user: account }));
        if disabled {
            changes.push(("migration".to_string(), Change::DisableUser { name }));
        }
    }
    Ok(changes)
}

/// Tag credentials a metadata database written before they were log records holds, for tags
/// the log has no credential record of: written to the log once, as their exact state (applying
/// it changes nothing here; a rebuild gets them back from the log).
pub fn legacy_tag_credentials(
    metadata: &Metadata,
    records: &[(u64, Arc<crate::model::ControlRecord>)],
) -> Result<Vec<(String, Change)>> {
    let in_log = named_in_log(records, |change| match change {
        Change::RevokeTag { tag }
        | Change::RotateTag { tag }
        | Change::TagCredentialState { tag, .. } => Some(tag.as_str()),
        _ => None,
    });
    Ok(metadata
        .tag_credentials()?
        .into_iter()
        .filter(|c| !in_log.contains(c.tag.as_str()))
        .map(|c| {
            let change = Change::TagCredentialState {
                tag: c.tag,
                generation: c.generation,
                revoked_ms: c.revoked_ms,
            };
            ("migration".to_string(), change)
        })
        .collect())
}

/// What a node checkpoint keeps of a [`ChangeHistory`]: the book, the purge records, and the
/// user and tag credential records.
pub type CheckpointParts<'a> = (
    &'a OrderBook,
    &'a [(u64, Arc<crate::model::ControlRecord>)],
    Vec<(u64, Arc<crate::model::ControlRecord>)>,
);

/// A user or tag credential record: what [`legacy_users`], [`legacy_tag_credentials`] and
/// [`catch_up_users`] look for among the records before a checkpoint.
fn is_credential_record(change: &Change) -> bool {
    // Users and tag credentials both count as user records.
    change.is_user()
}

/// A control record's number, the record, whose records it changes, and why it was refused.
type NotedChange = (
    u64,
    Arc<crate::model::ControlRecord>,
    Option<String>,
    Option<String>,
);

/// The control records met while replaying the log, with whose records each changes and whether
/// the record book refused it: the change history view is rebuilt from them at start. The hub's
/// decisions and the users are kept apart, for their stores to catch up on.
#[derive(Default)]
pub struct ChangeHistory {
    /// The same book the pipeline builds, to tell what each record changes and its verdict.
    book: OrderBook,
    entries: Vec<NotedChange>,
    /// The hub's decisions, the user records and the crime batches from
    /// `crime_batches_from` on, for their stores to catch up on.
    store_records: Vec<(u64, Arc<crate::model::ControlRecord>)>,
    /// Every purge record (cluster mode: this node's stores follow each, see
    /// `super::purge_follow`).
    purge_records: Vec<(u64, Arc<crate::model::ControlRecord>)>,
    crime_batches_from: u64,
}

impl ChangeHistory {
    /// A history that keeps the crime batches from record `crime_batches_from` on (those the
    /// crime store lacks: they are large).
    pub fn new(crime_batches_from: u64) -> Self {
        Self {
            crime_batches_from,
            ..Self::default()
        }
    }

    /// A history going on from a node checkpoint at record `k`: the book as of `k`, every
    /// purge record before it and the user and tag credential records before it (the start-up
    /// looks for names in them); the rest of what came before `k` is in the stores already
    /// (their marks are checked before a checkpoint is used).
    pub fn resume(
        book: OrderBook,
        purge_records: Vec<(u64, Arc<crate::model::ControlRecord>)>,
        credential_records: Vec<(u64, Arc<crate::model::ControlRecord>)>,
        crime_batches_from: u64,
    ) -> Self {
        Self {
            book,
            entries: Vec::new(),
            store_records: credential_records,
            purge_records,
            crime_batches_from,
        }
    }

    /// What a node checkpoint keeps of the history (see [`Self::resume`]): the book, the purge
    /// records and the user and tag credential records.
    pub fn checkpoint_parts(&self) -> CheckpointParts<'_> {
        let credentials = self
            .store_records
            .iter()
            .filter(|(_, c)| is_credential_record(&c.change))
            .cloned()
            .collect();
        (&self.book, &self.purge_records, credentials)
    }

    /// The hub's decisions, user records and kept crime batches noted, taken out.
    pub fn take_store_records(&mut self) -> Vec<(u64, Arc<crate::model::ControlRecord>)> {
        std::mem::take(&mut self.store_records)
    }

    /// The purge records noted, taken out.
    pub fn take_purge_records(&mut self) -> Vec<(u64, Arc<crate::model::ControlRecord>)> {
        std::mem::take(&mut self.purge_records)
    }

    /// Notes record `record`.
    pub fn note(&mut self, record: u64, control: &Arc<crate::model::ControlRecord>) {
        if !control.change.reaches_rules() {
            let old_batch = matches!(control.change, Change::CrimeBatch { .. })
                && record < self.crime_batches_from;
            if !old_batch {
                self.store_records.push((record, control.clone()));
            }
            return;
        }
        let person = self.book.person_of(&control.change);
        let refused = self.book.apply(record, control).err();
        if refused.is_none() && matches!(control.change, Change::Purge { .. }) {
            self.purge_records.push((record, control.clone()));
        }
        self.entries
            .push((record, control.clone(), person, refused));
    }

    /// Writes every noted change to the metadata view (records already there are kept), except
    /// those of people retention purged.
    pub fn write(self, metadata: &Metadata) -> Result<()> {
        let purged = metadata.purged_records()?;
        let kept: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, _, person, _)| {
                !person
                    .as_ref()
                    .is_some_and(|p| purged.contains(&("person".to_string(), p.clone())))
            })
            .map(|(record, control, person, refused)| {
                (
                    *record,
                    control.as_ref(),
                    person.as_deref(),
                    refused.as_deref(),
                )
            })
            .collect();
        for lot in kept.chunks(4096) {
            metadata.record_changes(lot)?;
        }
        Ok(())
    }
}
