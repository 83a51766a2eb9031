//! Export: a run is a plan of independent file tasks (docs/architecture.md, "Export").
//!
//! - `run`: the run as stored in the runs table and shown by the runs API, with its plan, the
//!   files it wrote, its outcome and the manifest it leaves in the customer's bucket;
//! - `plan`: from the lake's parts past the connector's watermark to file tasks whose keys are
//!   fixed up front, so a retried task overwrites its object and never adds one;
//! - `task`: one file task's record: state, attempts, continuations, the checkpoint;
//! - `layout`: what a file is called and labelled: extension, `Content-Type`, the
//!   manifest's and the `.DONE` marker's keys.

pub mod layout;
pub mod plan;
pub mod run;
pub mod task;
