//! The store as a whole: append, restart, cut, compact, retain, and a model
//! check that what goes in comes out through every path.

use std::collections::BTreeMap;

use lookout_protocol::remote_write::{Label, Sample, TimeSeries};
use lookout_tsdb::db::HOUR_MS;
use lookout_tsdb::{Db, MatchKind, Matcher, Options, Querier};
use proptest::prelude::*;

fn ts(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: pairs
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(t, v)| Sample {
                value: v,
                timestamp: t,
            })
            .collect(),
        ..Default::default()
    }
}

fn opts() -> Options {
    Options {
        block_range_ms: 2 * HOUR_MS,
        out_of_order_window_ms: HOUR_MS,
        retention_ms: 0,
        retention_bytes: 0,
        wal_segment_bytes: 64 << 10,
    }
}

fn count(db: &Db, name: &str) -> usize {
    db.select(&[Matcher::equal("__name__", name)], i64::MIN, i64::MAX)
        .unwrap()
        .iter()
        .map(|s| s.samples.len())
        .sum()
}

#[test]
fn samples_survive_a_restart_through_the_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        for i in 0..50 {
            let r = db
                .append(&mut [ts(
                    &[("__name__", "up"), ("job", "a")],
                    &[(i * 10_000, 1.0)],
                )])
                .unwrap();
            assert_eq!(r.samples_appended, 1);
        }
        // Dropped without a block cut: only the log holds the data.
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(count(&db, "up"), 50);
    assert_eq!(
        db.stats()
            .replayed_samples
            .load(std::sync::atomic::Ordering::Relaxed),
        50
    );
    // Replaying the same pushes again is a no-op.
    let r = db
        .append(&mut [ts(
            &[("__name__", "up"), ("job", "a")],
            &[(0, 1.0), (10_000, 1.0)],
        )])
        .unwrap();
    assert_eq!((r.samples_appended, r.duplicates), (0, 2));
}

/// A push of new series whose samples are all too old creates the series
/// and answers (it used to wait forever for a log write that never came).
#[test]
fn new_series_with_only_too_old_samples_answer_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(Db::open(dir.path(), opts()).unwrap());
    db.append(&mut [ts(&[("__name__", "now")], &[(10 * HOUR_MS, 1.0)])])
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let db2 = db.clone();
    std::thread::spawn(move || {
        let r = db2.append(&mut [ts(&[("__name__", "old"), ("k", "v")], &[(HOUR_MS, 1.0)])]);
        let _ = tx.send(r.map(|r| (r.too_old, r.series_created)));
    });
    let answer = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the append answers");
    assert_eq!(answer.unwrap(), (1, 1));
}

#[test]
fn labels_are_normalized_and_bad_series_reported() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let r = db
        .append(&mut [
            ts(
                &[("job", "a"), ("__name__", "x"), ("empty", "")],
                &[(1, 1.0)],
            ),
            ts(&[("job", "a")], &[(1, 1.0)]),
            ts(&[("__name__", "y"), ("a", "1"), ("a", "2")], &[(1, 1.0)]),
        ])
        .unwrap();
    assert_eq!(r.samples_appended, 1);
    assert_eq!(r.invalid_series, 2);
    let got = db
        .select(&[Matcher::equal("__name__", "x")], 0, 10)
        .unwrap();
    assert_eq!(
        got[0]
            .labels
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>(),
        ["__name__", "job"]
    );
}

#[test]
fn nan_and_stale_markers_are_kept_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    db.append(&mut [ts(
        &[("__name__", "x")],
        &[(1, f64::NAN), (2, stale), (3, 1.0)],
    )])
    .unwrap();
    db.cut_before(2).unwrap();
    let got = db
        .select(&[Matcher::equal("__name__", "x")], 0, 10)
        .unwrap();
    let bits: Vec<u64> = got[0].samples.iter().map(|s| s.1.to_bits()).collect();
    assert_eq!(
        bits,
        vec![f64::NAN.to_bits(), stale.to_bits(), 1f64.to_bits()]
    );
}

#[test]
fn blocks_are_cut_checkpointed_compacted_and_retained() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.retention_ms = 24 * HOUR_MS;
    let step = 60_000;
    let hours = 31;
    {
        let db = Db::open(dir.path(), o.clone()).unwrap();
        for i in 0..(hours * 60) {
            let t = i * step;
            db.append(&mut [
                ts(&[("__name__", "a"), ("n", "1")], &[(t, i as f64)]),
                ts(&[("__name__", "b"), ("n", "2")], &[(t, 2.0)]),
            ])
            .unwrap();
            if i % 60 == 0 {
                db.maintain().unwrap();
            }
        }
        db.maintain().unwrap();
        let blocks = db.blocks();
        assert!(!blocks.is_empty());
        assert!(
            blocks.iter().any(|b| b.meta.level > 1),
            "some blocks were compacted: {:?}",
            blocks.iter().map(|b| &b.meta).collect::<Vec<_>>()
        );
        // Everything from the last 24 hours of data is there, in order.
        let got = db
            .select(&[Matcher::equal("__name__", "a")], 0, i64::MAX)
            .unwrap();
        let s = &got[0].samples;
        assert!(s.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(s.last().unwrap().0, (hours * 60 - 1) * step);
        assert!(s[0].0 <= (hours - 24) * HOUR_MS, "oldest kept {}", s[0].0);
        assert!(s[0].0 > 0, "retention removed the first hours");
        // A late sample for a range already in a block still lands once.
        let late = (hours * 60 - 50) * step + 1;
        db.append(&mut [ts(&[("__name__", "a"), ("n", "1")], &[(late, -1.0)])])
            .unwrap();
    }
    let db = Db::open(dir.path(), o).unwrap();
    let got = db
        .select(&[Matcher::equal("__name__", "a")], 0, i64::MAX)
        .unwrap();
    let s = &got[0].samples;
    assert!(
        s.windows(2).all(|w| w[0].0 < w[1].0),
        "no duplicates after restart"
    );
    assert!(
        s.iter()
            .any(|&(t, v)| t == (hours * 60 - 50) * step + 1 && v == -1.0)
    );
    let names = db.label_names(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(names, vec!["__name__", "n"]);
    let values = db
        .label_values(
            "n",
            &[Matcher::new(MatchKind::Regex, "__name__", "a|b").unwrap()],
            0,
            i64::MAX,
        )
        .unwrap();
    assert_eq!(values, vec!["1", "2"]);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _db = Db::open(dir.path(), opts()).unwrap();
    let err = Db::open(dir.path(), opts()).err().unwrap();
    assert!(err.to_string().contains("in use"), "{err}");
}

#[derive(Debug, Clone)]
enum Op {
    Append { series: u8, t: i64, v: u8 },
    Cut,
    Reopen,
    Maintain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..4, 0i64..(6 * HOUR_MS / 60_000), 0u8..3)
            .prop_map(|(series, m, v)| Op::Append { series, t: m * 60_000, v }),
        1 => Just(Op::Cut),
        1 => Just(Op::Reopen),
        1 => Just(Op::Maintain),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever mix of appends (in order, late, repeated), block cuts,
    /// restarts and compactions: the store answers like a map from
    /// (series, timestamp) to the first value written, minus what the
    /// out-of-order window refused.
    #[test]
    fn the_store_agrees_with_a_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts();
        o.out_of_order_window_ms = 6 * HOUR_MS;
        o.block_range_ms = 2 * HOUR_MS;
        let mut db = Some(Db::open(dir.path(), o.clone()).unwrap());
        let mut model: BTreeMap<(u8, i64), f64> = BTreeMap::new();
        for op in ops {
            let d = db.as_ref().unwrap();
            match op {
                Op::Append { series, t, v } => {
                    let name = format!("s{series}");
                    d.append(&mut [ts(&[("__name__", &name)], &[(t, v as f64)])]).unwrap();
                    model.entry((series, t)).or_insert(v as f64);
                }
                Op::Cut => {
                    if let Some(max) = d.head().max_time() {
                        d.cut_before(max).unwrap();
                    }
                }
                Op::Maintain => {
                    d.maintain().unwrap();
                }
                Op::Reopen => {
                    drop(db.take());
                    db = Some(Db::open(dir.path(), o.clone()).unwrap());
                }
            }
        }
        let d = db.as_ref().unwrap();
        for series in 0..4u8 {
            let name = format!("s{series}");
            let got: Vec<(i64, f64)> = d
                .select(&[Matcher::equal("__name__", &name)], i64::MIN, i64::MAX)
                .unwrap()
                .into_iter()
                .flat_map(|s| s.samples)
                .collect();
            let want: Vec<(i64, f64)> = model
                .range((series, i64::MIN)..=(series, i64::MAX))
                .map(|(&(_, t), &v)| (t, v))
                .collect();
            prop_assert_eq!(got, want, "series {}", name);
        }
    }
}
