//! In-memory runs table, with the DynamoDB adapter's rules: a run id is
//! written once, listings are newest first in pages whose `next` is the last run id of a full
//! page, and watermarks move only from the state the caller expects. Failures can be injected
//! per operation, and a "concurrent" change can run right before the next write.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::domain::export::run::{Run, Watermarks};
use crate::domain::export::task::{TaskRecord, TaskState};
use crate::error::StoreError;
use crate::ports::{Page, RunStore};

/// The operations of [`RunStore`], for injected failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOp {
    Create,
    Get,
    List,
    Update,
    Watermarks,
    AdvanceWatermarks,
    CreateTasks,
    Tasks,
    TakeTask,
    SaveTask,
    CountWritten,
    Claim,
    Release,
}

/// A connector's watermarks item: the map, its version and the run that moved it last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredWatermarks {
    pub watermarks: Watermarks,
    pub version: u64,
    pub last_run_id: String,
}

#[derive(Debug, Clone, Default)]
pub struct RunsState {
    /// (connector id, run id) → run
    pub runs: BTreeMap<(String, String), Run>,
    pub watermarks: BTreeMap<String, StoredWatermarks>,
    /// (connector id, run id, index) → task record
    pub tasks: BTreeMap<(String, String, u32), TaskRecord>,
    /// (connector id, run id) → indices counted as written
    pub written: BTreeMap<(String, String), BTreeSet<u32>>,
    /// In-flight markers, slots and tenant seats (`fakes::claims`).
    pub claims: super::claims::ClaimsState,
}

type Interleave = Box<dyn FnOnce(&mut RunsState) + Send>;

#[derive(Default)]
pub struct MemoryRunStore {
    state: Mutex<RunsState>,
    failures: Mutex<Vec<(RunOp, StoreError)>>,
    before_write: Mutex<Vec<Interleave>>,
}

impl MemoryRunStore {
    pub fn state(&self) -> RunsState {
        self.state.lock().expect("not poisoned").clone()
    }

    /// Changes the stored state now (fixtures).
    pub fn seed(&self, change: impl FnOnce(&mut RunsState)) {
        change(&mut self.state.lock().expect("not poisoned"));
    }

    /// Stores `run` as it is (fixtures).
    pub fn insert(&self, run: Run) {
        self.seed(|state| {
            state
                .runs
                .insert((run.connector_id.clone(), run.run_id.clone()), run);
        });
    }

    /// The next call of `op` fails with `error` (and changes nothing).
    pub fn fail_next(&self, op: RunOp, error: StoreError) {
        self.failures
            .lock()
            .expect("not poisoned")
            .push((op, error));
    }

    /// Runs `change` just before the next write, as a concurrent writer would.
    pub fn before_next_write(&self, change: impl FnOnce(&mut RunsState) + Send + 'static) {
        self.before_write
            .lock()
            .expect("not poisoned")
            .push(Box::new(change));
    }

    fn injected(&self, op: RunOp) -> Result<(), StoreError> {
        let mut failures = self.failures.lock().expect("not poisoned");
        match failures.iter().position(|(o, _)| *o == op) {
            Some(i) => Err(failures.remove(i).1),
            None => Ok(()),
        }
    }

    pub(super) fn write<T>(
        &self,
        op: RunOp,
        apply: impl FnOnce(&mut RunsState) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.injected(op)?;
        let pending = self.before_write.lock().expect("not poisoned").pop();
        let mut state = self.state.lock().expect("not poisoned");
        if let Some(change) = pending {
            change(&mut state);
        }
        apply(&mut state)
    }
}

fn run_key(run: &Run) -> (String, String) {
    (run.connector_id.clone(), run.run_id.clone())
}

impl RunStore for MemoryRunStore {
    async fn create(&self, run: &Run) -> Result<(), StoreError> {
        self.write(RunOp::Create, |state| {
            if state.runs.contains_key(&run_key(run)) {
                return Err(StoreError::AlreadyExists);
            }
            state.runs.insert(run_key(run), run.clone());
            Ok(())
        })
    }

    async fn get(&self, connector_id: &str, run_id: &str) -> Result<Option<Run>, StoreError> {
        self.injected(RunOp::Get)?;
        let state = self.state.lock().expect("not poisoned");
        Ok(state
            .runs
            .get(&(connector_id.to_owned(), run_id.to_owned()))
            .cloned())
    }

    async fn list(
        &self,
        connector_id: &str,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Run>, StoreError> {
        self.injected(RunOp::List)?;
        let state = self.state.lock().expect("not poisoned");
        let mut items: Vec<Run> = state
            .runs
            .values()
            .rev()
            .filter(|r| r.connector_id == connector_id)
            .filter(|r| after.is_none_or(|a| r.run_id.as_str() < a))
            .cloned()
            .collect();
        let next = (items.len() > limit as usize).then(|| {
            items.truncate(limit as usize);
            items.last().map(|r| r.run_id.clone())
        });
        Ok(Page {
            items,
            next: next.flatten(),
        })
    }

    async fn update(&self, run: &Run) -> Result<(), StoreError> {
        self.write(RunOp::Update, |state| {
            state.runs.insert(run_key(run), run.clone());
            Ok(())
        })
    }

    async fn watermarks(&self, connector_id: &str) -> Result<Watermarks, StoreError> {
        self.injected(RunOp::Watermarks)?;
        let state = self.state.lock().expect("not poisoned");
        Ok(state
            .watermarks
            .get(connector_id)
            .map(|w| w.watermarks.clone())
            .unwrap_or_default())
    }

    async fn advance_watermarks(
        &self,
        connector_id: &str,
        run_id: &str,
        expected: &Watermarks,
        next: &Watermarks,
    ) -> Result<(), StoreError> {
        self.write(RunOp::AdvanceWatermarks, |state| {
            let current = state.watermarks.get(connector_id).cloned();
            let (current_map, version) = match &current {
                Some(stored) => (stored.watermarks.clone(), stored.version),
                None => (Watermarks::new(), 0),
            };
            let redone = current
                .as_ref()
                .is_some_and(|c| c.last_run_id == run_id && &c.watermarks == next);
            if redone {
                return Ok(());
            }
            if &current_map != expected {
                return Err(StoreError::Contended);
            }
            state.watermarks.insert(
                connector_id.to_owned(),
                StoredWatermarks {
                    watermarks: next.clone(),
                    version: version + 1,
                    last_run_id: run_id.to_owned(),
                },
            );
            Ok(())
        })
    }

    async fn create_tasks(
        &self,
        connector_id: &str,
        tasks: &[TaskRecord],
    ) -> Result<(), StoreError> {
        self.write(RunOp::CreateTasks, |state| {
            for task in tasks {
                state
                    .tasks
                    .entry((connector_id.to_owned(), task.run_id.clone(), task.index))
                    .or_insert_with(|| task.clone());
            }
            Ok(())
        })
    }

    async fn tasks(&self, connector_id: &str, run_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        self.injected(RunOp::Tasks)?;
        let state = self.state.lock().expect("not poisoned");
        Ok(state
            .tasks
            .iter()
            .filter(|((c, r, _), _)| c == connector_id && r == run_id)
            .map(|(_, t)| t.clone())
            .collect())
    }

    async fn take_task(
        &self,
        connector_id: &str,
        run_id: &str,
        index: u32,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<TaskRecord>, StoreError> {
        self.write(RunOp::TakeTask, |state| {
            let Some(task) =
                state
                    .tasks
                    .get_mut(&(connector_id.to_owned(), run_id.to_owned(), index))
            else {
                return Ok(None);
            };
            if !task.is_free(now) {
                return Ok(None);
            }
            task.attempts += 1;
            task.state = TaskState::Writing;
            task.lease_until = lease_until;
            Ok(Some(task.clone()))
        })
    }

    async fn save_task(&self, connector_id: &str, task: &TaskRecord) -> Result<(), StoreError> {
        self.write(RunOp::SaveTask, |state| {
            state.tasks.insert(
                (connector_id.to_owned(), task.run_id.clone(), task.index),
                task.clone(),
            );
            Ok(())
        })
    }

    async fn count_written(
        &self,
        connector_id: &str,
        run_id: &str,
        index: u32,
    ) -> Result<(u32, bool), StoreError> {
        self.write(RunOp::CountWritten, |state| {
            let written = state
                .written
                .entry((connector_id.to_owned(), run_id.to_owned()))
                .or_default();
            let counted = written.insert(index);
            Ok((written.len() as u32, counted))
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::export::run::RunTrigger;

    fn marks(pairs: &[(&str, u64)]) -> Watermarks {
        pairs.iter().map(|(t, s)| ((*t).to_owned(), *s)).collect()
    }

    fn run(connector: &str, id: &str) -> Run {
        let at = chrono::Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap();
        Run::queued("acme", connector, id.into(), RunTrigger::Api, at)
    }

    #[tokio::test]
    async fn watermarks_move_only_from_the_expected_state() {
        let store = MemoryRunStore::default();
        assert_eq!(store.watermarks("con_1").await.unwrap(), Watermarks::new());

        // (expected, next, outcome): each step starts where the previous one left off.
        type Marks<'a> = &'a [(&'a str, u64)];
        let steps: &[(Marks, Marks, bool)] = &[
            // First run: from nothing.
            (&[], &[("orders", 10)], true),
            // A retry of the same commit: the state moved on, so it is refused.
            (&[], &[("orders", 10)], false),
            // A run planned from a stale read.
            (&[("orders", 9)], &[("orders", 12)], false),
            // The next run, from the current state, adds a table.
            (&[("orders", 10)], &[("orders", 12), ("customers", 3)], true),
            // Expected must match the whole map, not a subset of it.
            (&[("orders", 12)], &[("orders", 20)], false),
            (
                &[("customers", 3), ("orders", 12)],
                &[("customers", 3), ("orders", 20)],
                true,
            ),
        ];
        let mut version = 0;
        for (i, (expected, next, succeeds)) in steps.iter().enumerate() {
            let before = store.watermarks("con_1").await.unwrap();
            let result = store
                .advance_watermarks("con_1", &format!("run_{i}"), &marks(expected), &marks(next))
                .await;
            if *succeeds {
                result.unwrap_or_else(|e| panic!("step {i}: {e}"));
                version += 1;
                assert_eq!(store.watermarks("con_1").await.unwrap(), marks(next));
                let stored = &store.state().watermarks["con_1"];
                assert_eq!(stored.version, version, "step {i}");
                assert_eq!(stored.last_run_id, format!("run_{i}"), "step {i}");
            } else {
                assert!(
                    matches!(result, Err(StoreError::Contended)),
                    "step {i}: {result:?}"
                );
                assert_eq!(store.watermarks("con_1").await.unwrap(), before, "step {i}");
            }
        }
        // Connectors are independent.
        assert_eq!(store.watermarks("con_2").await.unwrap(), Watermarks::new());
    }

    #[tokio::test]
    async fn a_concurrent_advance_wins_and_the_other_is_contended() {
        let store = MemoryRunStore::default();
        store.before_next_write(|state| {
            state.watermarks.insert(
                "con_1".into(),
                StoredWatermarks {
                    watermarks: marks(&[("orders", 5)]),
                    version: 1,
                    last_run_id: "run_other".into(),
                },
            );
        });
        let result = store
            .advance_watermarks(
                "con_1",
                "run_mine",
                &Watermarks::new(),
                &marks(&[("orders", 7)]),
            )
            .await;
        assert!(matches!(result, Err(StoreError::Contended)), "{result:?}");
        assert_eq!(
            store.state().watermarks["con_1"].last_run_id,
            "run_other",
            "the concurrent commit stands"
        );
    }

    #[tokio::test]
    async fn runs_are_written_once_and_listed_newest_first() {
        let store = MemoryRunStore::default();
        for id in ["run_01", "run_02", "run_03", "run_04", "run_05"] {
            store.create(&run("con_1", id)).await.unwrap();
        }
        store.create(&run("con_2", "run_06")).await.unwrap();
        assert!(matches!(
            store.create(&run("con_1", "run_03")).await,
            Err(StoreError::AlreadyExists)
        ));

        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = store.list("con_1", 2, after.as_deref()).await.unwrap();
            pages += 1;
            seen.extend(page.items.iter().map(|r| r.run_id.clone()));
            match page.next {
                Some(next) => {
                    assert_eq!(Some(&next), seen.last(), "next is the page's last id");
                    after = Some(next);
                }
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, ["run_05", "run_04", "run_03", "run_02", "run_01"]);
        // A full last page has no token.
        let page = store.list("con_1", 5, None).await.unwrap();
        assert_eq!((page.items.len(), page.next), (5, None));
    }

    #[tokio::test]
    async fn injected_failures_fail_one_call_and_change_nothing() {
        let store = MemoryRunStore::default();
        store.fail_next(RunOp::Create, StoreError::Contended);
        assert!(store.create(&run("con_1", "run_01")).await.is_err());
        assert!(store.state().runs.is_empty());
        store.create(&run("con_1", "run_01")).await.unwrap();

        store.fail_next(RunOp::List, StoreError::Corrupt("x".into()));
        assert!(store.list("con_1", 10, None).await.is_err());
        assert_eq!(store.list("con_1", 10, None).await.unwrap().items.len(), 1);
    }
}
