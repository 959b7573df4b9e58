//! What the Lookout agent and collector share: the sample and label model and
//! the Prometheus exposition encoders (and, later, the remote-write codec).

pub mod exposition;
pub mod model;
pub mod remote_write;

pub use model::{Family, Label, Labels, MetricKind, Sample, Str};
