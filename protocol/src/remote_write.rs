//! Prometheus remote write 1.0: the protobuf `WriteRequest`, snappy block
//! framing, the standard headers, and decoding with size limits and clear
//! errors.
//!
//! The messages are declared here with prost's derive (no `protoc` at build
//! time); field numbers follow Prometheus's `prompb/types.proto` and
//! `remote.proto`.

use crate::model::{Family, Labels};

/// `Content-Type` of a remote-write body.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// `Content-Encoding` of a remote-write body.
pub const CONTENT_ENCODING: &str = "snappy";
/// `X-Prometheus-Remote-Write-Version` for protocol 1.0.
pub const VERSION_HEADER: &str = "X-Prometheus-Remote-Write-Version";
pub const VERSION: &str = "0.1.0";

/// The staleness marker: a NaN with this exact bit pattern tells the
/// receiver that a series has ended.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Exemplars are accepted on the wire and not kept.
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Opaque>,
    /// Native histograms are recognised so that a receiver can refuse them
    /// clearly instead of dropping them unseen.
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Opaque>,
}

/// A message whose content is not read (exemplars, native histograms).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Opaque {}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(enumeration = "MetricType", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    Unknown = 0,
    Counter = 1,
    Gauge = 2,
    Histogram = 3,
    GaugeHistogram = 4,
    Summary = 5,
    Info = 6,
    Stateset = 7,
}

/// Why a body could not be decoded. Each maps to an HTTP status a receiver
/// answers with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("body is not snappy block data: {0}")]
    Snappy(String),
    #[error("decompressed body would be {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("body is not a remote-write protobuf WriteRequest: {0}")]
    Protobuf(String),
}

impl DecodeError {
    /// The status Prometheus's receiver answers with: 413 for a body over
    /// the limit, 400 for anything unreadable.
    pub fn http_status(&self) -> u16 {
        match self {
            DecodeError::TooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// Compresses and encodes a request into a remote-write body.
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(req);
    // Compressing a buffer into a vector of max_compress_len cannot fail.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

/// Decodes a remote-write body, refusing one that would decompress to more
/// than `max_decoded_bytes` before allocating for it.
pub fn decode(body: &[u8], max_decoded_bytes: usize) -> Result<WriteRequest, DecodeError> {
    let size = snap::raw::decompress_len(body).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if size > max_decoded_bytes {
        return Err(DecodeError::TooLarge {
            size,
            limit: max_decoded_bytes,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError::Snappy(e.to_string()))?;
    <WriteRequest as prost::Message>::decode(raw.as_slice())
        .map_err(|e| DecodeError::Protobuf(e.to_string()))
}

/// What is wrong with one series of a decoded request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeriesError {
    #[error("series has no labels")]
    NoLabels,
    #[error("series has no __name__ label: {0}")]
    NoName(String),
    #[error("invalid label name {0:?}")]
    InvalidLabelName(String),
    #[error("label {0:?} appears more than once")]
    DuplicateLabel(String),
    #[error("labels are not sorted by name: {0:?} before {1:?}")]
    Unsorted(String, String),
    #[error("label {0:?} has an empty value (empty labels must be left out)")]
    EmptyValue(String),
}

/// Checks a series' labels the way a strict receiver does: a `__name__`,
/// valid names, sorted, unique, no empty values.
pub fn validate_labels(labels: &[Label]) -> Result<(), SeriesError> {
    if labels.is_empty() {
        return Err(SeriesError::NoLabels);
    }
    if !labels.iter().any(|l| l.name == "__name__") {
        return Err(SeriesError::NoName(describe(labels)));
    }
    for (i, l) in labels.iter().enumerate() {
        if l.name != "__name__" && !crate::model::is_valid_label_name(&l.name) {
            return Err(SeriesError::InvalidLabelName(l.name.clone()));
        }
        if l.value.is_empty() {
            return Err(SeriesError::EmptyValue(l.name.clone()));
        }
        if i > 0 {
            let prev = &labels[i - 1].name;
            match prev.cmp(&l.name) {
                std::cmp::Ordering::Equal => {
                    return Err(SeriesError::DuplicateLabel(l.name.clone()));
                }
                std::cmp::Ordering::Greater => {
                    return Err(SeriesError::Unsorted(prev.clone(), l.name.clone()));
                }
                std::cmp::Ordering::Less => {}
            }
        }
    }
    Ok(())
}

/// Brings a received series' labels to the form a store keys on, as
/// Prometheus's receiver does: labels with empty values are dropped (empty
/// and absent mean the same), unsorted labels are sorted. Then checks what
/// cannot be repaired: a missing name, invalid or repeated label names.
pub fn normalize_labels(labels: &mut Vec<Label>) -> Result<(), SeriesError> {
    if labels.iter().any(|l| l.value.is_empty()) {
        labels.retain(|l| !l.value.is_empty());
    }
    if !labels.is_sorted_by(|a, b| a.name <= b.name) {
        labels.sort_by(|a, b| a.name.cmp(&b.name));
    }
    validate_labels(labels)
}

fn describe(labels: &[Label]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// The remote-write label set of a sample: `__name__`, the sample's labels
/// and `extra` (job, instance), sorted, with empty values left out. Labels
/// in `extra` win over a sample's own labels of the same name.
pub fn series_labels(name: &str, labels: &Labels, extra: &Labels) -> Vec<Label> {
    let mut out: Vec<Label> = Vec::with_capacity(labels.len() + extra.len() + 1);
    out.push(Label {
        name: "__name__".to_string(),
        value: name.to_string(),
    });
    for l in extra.iter() {
        if !l.value.is_empty() {
            out.push(Label {
                name: l.name.to_string(),
                value: l.value.to_string(),
            });
        }
    }
    for l in labels.iter() {
        if !l.value.is_empty() && extra.get(&l.name).is_none() && l.name != "__name__" {
            out.push(Label {
                name: l.name.to_string(),
                value: l.value.to_string(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// Turns families sampled at `timestamp_ms` into a request, one series per
/// sample, each carrying `extra` labels.
pub fn from_families<'a>(
    families: impl IntoIterator<Item = &'a Family>,
    timestamp_ms: i64,
    extra: &Labels,
) -> WriteRequest {
    let mut timeseries = Vec::new();
    for f in families {
        for s in &f.samples {
            timeseries.push(TimeSeries {
                labels: series_labels(&f.name, &s.labels, extra),
                samples: vec![Sample {
                    value: s.value,
                    timestamp: timestamp_ms,
                }],
                exemplars: Vec::new(),
                histograms: Vec::new(),
            });
        }
    }
    WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MetricKind;

    fn label(n: &str, v: &str) -> Label {
        Label {
            name: n.into(),
            value: v.into(),
        }
    }

    #[test]
    fn encode_then_decode_round_trips_including_stale_markers() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![label("__name__", "up"), label("job", "x")],
                samples: vec![
                    Sample {
                        value: 1.0,
                        timestamp: 1000,
                    },
                    Sample {
                        value: stale_nan(),
                        timestamp: 2000,
                    },
                ],
                exemplars: vec![],
                histograms: vec![],
            }],
            metadata: vec![MetricMetadata {
                r#type: MetricType::Gauge as i32,
                metric_family_name: "up".into(),
                help: "h".into(),
                unit: String::new(),
            }],
        };
        let body = encode(&req);
        let back = decode(&body, 1 << 20).unwrap();
        assert_eq!(back.timeseries[0].labels, req.timeseries[0].labels);
        assert!(is_stale_nan(back.timeseries[0].samples[1].value));
        assert_eq!(back.metadata[0].metric_family_name, "up");
    }

    #[test]
    fn bad_bodies_get_clear_errors() {
        let body = encode(&WriteRequest::default());
        assert!(decode(&body, 1 << 20).unwrap().timeseries.is_empty());
        let garbage = decode(b"not snappy at all \xff\xff\xff\xff\xff", 1 << 20).unwrap_err();
        assert_eq!(garbage.http_status(), 400);
        // Truncated snappy.
        let big = encode(&from_families(
            [&Family::single("m", "h", MetricKind::Gauge, 1.0)],
            1,
            &Labels::new(),
        ));
        assert!(decode(&big[..big.len() - 1], 1 << 20).is_err());
        // Snappy of something that is not protobuf.
        let not_proto = snap::raw::Encoder::new().compress_vec(&[0xff; 64]).unwrap();
        assert!(matches!(
            decode(&not_proto, 1 << 20),
            Err(DecodeError::Protobuf(_))
        ));
        // Over the limit: refused before decompressing.
        let large = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 4096])
            .unwrap();
        let err = decode(&large, 1024).unwrap_err();
        assert_eq!(
            err,
            DecodeError::TooLarge {
                size: 4096,
                limit: 1024
            }
        );
        assert_eq!(err.http_status(), 413);
    }

    #[test]
    fn label_validation() {
        assert_eq!(validate_labels(&[]), Err(SeriesError::NoLabels));
        assert!(matches!(
            validate_labels(&[label("job", "x")]),
            Err(SeriesError::NoName(_))
        ));
        assert_eq!(
            validate_labels(&[label("__name__", "m"), label("z", "1"), label("a", "2")]),
            Err(SeriesError::Unsorted("z".into(), "a".into()))
        );
        assert_eq!(
            validate_labels(&[label("__name__", "m"), label("a", "1"), label("a", "2")]),
            Err(SeriesError::DuplicateLabel("a".into()))
        );
        assert_eq!(
            validate_labels(&[label("__name__", "m"), label("a-b", "1")]),
            Err(SeriesError::InvalidLabelName("a-b".into()))
        );
        assert_eq!(
            validate_labels(&[label("__name__", "m"), label("a", "")]),
            Err(SeriesError::EmptyValue("a".into()))
        );
        assert_eq!(
            validate_labels(&[label("__name__", "m"), label("a", "1")]),
            Ok(())
        );
    }

    #[test]
    fn families_become_sorted_valid_series_with_extra_labels() {
        let mut f = Family::gauge("container_memory_usage_bytes", "h");
        f.push(
            Labels::from_pairs([
                ("name", "web"),
                ("id", "/docker/x"),
                ("image", ""),
                ("job", "mine"),
            ]),
            5.0,
        );
        let extra = Labels::from_pairs([("job", "cadvisor"), ("instance", "node-1")]);
        let req = from_families([&f], 1_700_000_000_000, &extra);
        let ts = &req.timeseries[0];
        validate_labels(&ts.labels).unwrap();
        let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "id", "instance", "job", "name"]);
        assert_eq!(
            ts.labels.iter().find(|l| l.name == "job").unwrap().value,
            "cadvisor"
        );
        assert_eq!(
            ts.samples,
            vec![Sample {
                value: 5.0,
                timestamp: 1_700_000_000_000
            }]
        );
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode(&body, 1 << 16);
        }

        #[test]
        fn any_sorted_series_round_trips(
            values in proptest::collection::vec(proptest::num::f64::ANY, 1..20),
            name in "[a-z_][a-z0-9_]{0,20}",
            value in ".{1,30}",
        ) {
            let labels = vec![label("__name__", &name), label("l", &value)];
            let samples: Vec<Sample> = values.iter().enumerate().map(|(i, v)| Sample { value: *v, timestamp: i as i64 }).collect();
            let req = WriteRequest { timeseries: vec![TimeSeries { labels: labels.clone(), samples: samples.clone(), exemplars: vec![], histograms: vec![] }], metadata: vec![] };
            let back = decode(&encode(&req), 1 << 20).unwrap();
            proptest::prop_assert_eq!(&back.timeseries[0].labels, &labels);
            for (a, b) in back.timeseries[0].samples.iter().zip(&samples) {
                // Bit-exact, NaN payloads (stale markers) included; only the
                // sign of zero is lost, because proto3 leaves a zero double
                // out of the encoding (Prometheus's own encoder does too).
                let same = a.value.to_bits() == b.value.to_bits() || (a.value == 0.0 && b.value == 0.0);
                proptest::prop_assert!(same, "{} became {}", b.value, a.value);
                proptest::prop_assert_eq!(a.timestamp, b.timestamp);
            }
        }
    }
}
