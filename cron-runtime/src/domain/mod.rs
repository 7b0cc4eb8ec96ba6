//! Domain types: what a job and a run are, and the schedule maths.
//!
//! Values here are parsed at the boundary (API, database) and valid by construction inside.

pub mod describe;
pub mod draft;
pub mod incident;
pub mod job;
pub mod retry;
pub mod run;
pub mod schedule;
pub mod target;

pub use draft::{Draft, FieldError, NewDefinition, ScheduleSpec};
pub use job::{JobDefinition, JobKey, JobKeyError, JobStatus, ManagedBy, ScheduleType};
pub use retry::{RetryDraft, RetryPolicy};
pub use run::{JobRun, RunReason, RunStatus, TriggerType};
pub use schedule::{Schedule, ScheduleError};
