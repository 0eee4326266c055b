//! Scale-out: remote write to a central store, `/federate` and remote read.
//!
//! - [`write`]: queues per `remote_write[]` entry that read from edgeprom's own storage, so the
//!   TSDB doubles as the offline buffer (no second copy on flash); only a checkpoint is written.
//! - [`federate`]: `GET /federate?match[]=...`, latest values in text format.
//! - [`read`]: `POST /api/v1/read`, remote read with a samples response.
//! - [`proto`]: the protobuf messages and snappy framing they share (hostile-input safe).
//!
//! The lead wires `/federate` and `/api/v1/read` into the web router and runs
//! [`write::RemoteWriter`] from `app`; see `README.md` beside this file for the fleet set-up.

pub mod federate;
pub mod proto;
pub mod read;
mod selector;
pub mod write;

pub use federate::federate;
pub use read::{remote_read, remote_read_with_labels};
pub use selector::{parse_selector, SelectorError};
pub use write::{QueueStatus, RemoteWriter, WriterOptions};
