//! Binary operators: arithmetic, comparisons and the set operators, with
//! Prometheus's vector matching (`on`, `ignoring`, `group_left`,
//! `group_right`).

use crate::value::HashMap;

use lookout_protocol::Labels;
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::error::{QueryError, Result};
use crate::eval::{Evaluator, Grid, VSeries, Val};
use crate::value::{
    METRIC_NAME, keep_labels, labels_key, labels_string, set_label, signature, without_labels,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl Op {
    fn parse(s: &str) -> Result<Op> {
        Ok(match s {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "atan2" => Op::Atan2,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            "and" => Op::And,
            "or" => Op::Or,
            "unless" => Op::Unless,
            other => {
                return Err(QueryError::bad_data(format!(
                    "unknown binary operator {other:?}"
                )));
            }
        })
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    fn is_set(self) -> bool {
        matches!(self, Op::And | Op::Or | Op::Unless)
    }
}

/// Applies an arithmetic or comparison operator. For comparisons the
/// answer is whether the pair passes, and the value kept is `l`.
fn apply(op: Op, l: f64, r: f64) -> (f64, bool) {
    match op {
        Op::Add => (l + r, true),
        Op::Sub => (l - r, true),
        Op::Mul => (l * r, true),
        Op::Div => (l / r, true),
        // Rust's `%` is Go's `math.Mod`: the result takes the sign of `l`.
        Op::Mod => (l % r, true),
        Op::Pow => (l.powf(r), true),
        Op::Atan2 => (l.atan2(r), true),
        Op::Eq => (l, l == r),
        Op::Ne => (l, l != r),
        Op::Gt => (l, l > r),
        Op::Lt => (l, l < r),
        Op::Ge => (l, l >= r),
        Op::Le => (l, l <= r),
        Op::And | Op::Or | Op::Unless => (l, true),
    }
}

pub(crate) fn eval_binary(ev: &mut Evaluator<'_>, b: &BinaryExpr, g: &Grid) -> Result<Val> {
    let op = Op::parse(&b.op.to_string())?;
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = ev.eval(&b.lhs, g)?;
    let rhs = ev.eval(&b.rhs, g)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => {
            if op.is_comparison() && !return_bool {
                return Err(QueryError::bad_data(
                    "comparisons between scalars must use BOOL modifier",
                ));
            }
            Ok(Val::Scalar(
                l.iter()
                    .zip(&r)
                    .map(|(&a, &b)| {
                        let (v, keep) = apply(op, a, b);
                        if op.is_comparison() {
                            if keep { 1.0 } else { 0.0 }
                        } else {
                            v
                        }
                    })
                    .collect(),
            ))
        }
        (Val::Vector(l), Val::Scalar(r)) => {
            Ok(Val::Vector(vector_scalar(op, l, &r, false, return_bool)))
        }
        (Val::Scalar(l), Val::Vector(r)) => {
            Ok(Val::Vector(vector_scalar(op, r, &l, true, return_bool)))
        }
        (Val::Vector(l), Val::Vector(r)) => {
            let m = b.modifier.as_ref();
            if op.is_set() {
                Ok(Val::Vector(set_op(op, l, r, m, g)))
            } else {
                Ok(Val::Vector(vector_vector(ev, op, l, r, m, return_bool, g)?))
            }
        }
        (l, r) => Err(QueryError::bad_data(format!(
            "binary expression must contain only scalar and instant vector types, got {} and {}",
            l.type_name(),
            r.type_name()
        ))),
    }
}

fn vector_scalar(
    op: Op,
    vs: Vec<VSeries>,
    s: &[f64],
    scalar_left: bool,
    return_bool: bool,
) -> Vec<VSeries> {
    let mut out = Vec::with_capacity(vs.len());
    for mut series in vs {
        let mut points = Vec::with_capacity(series.points.len());
        for &(i, v) in &series.points {
            let sv = s[i as usize];
            let (l, r) = if scalar_left { (sv, v) } else { (v, sv) };
            let (mut value, keep) = apply(op, l, r);
            if op.is_comparison() && scalar_left {
                // A comparison keeps the vector's value even when the
                // scalar is on the left.
                value = r;
            }
            if return_bool {
                points.push((i, if keep { 1.0 } else { 0.0 }));
            } else if keep {
                points.push((i, value));
            }
        }
        if points.is_empty() {
            continue;
        }
        if !op.is_comparison() || return_bool {
            series.drop_name = true;
        }
        series.points = points;
        out.push(series);
    }
    out
}

struct Matching<'a> {
    on: bool,
    names: &'a [String],
}

fn matching(m: Option<&BinModifier>) -> Matching<'_> {
    match m.and_then(|m| m.matching.as_ref()) {
        Some(LabelModifier::Include(l)) => Matching {
            on: true,
            names: &l.labels,
        },
        Some(LabelModifier::Exclude(l)) => Matching {
            on: false,
            names: &l.labels,
        },
        None => Matching {
            on: false,
            names: &[],
        },
    }
}

/// For each signature, which series of a side hold a point at each step.
fn by_signature(vs: &[VSeries], m: &Matching<'_>) -> HashMap<Vec<u8>, Vec<usize>> {
    let mut map: HashMap<Vec<u8>, Vec<usize>> =
        HashMap::with_capacity_and_hasher(vs.len(), Default::default());
    for (i, s) in vs.iter().enumerate() {
        let sig = signature(&s.labels, m.on, m.names);
        map.entry(sig).or_default().push(i);
    }
    map
}

fn set_op(
    op: Op,
    l: Vec<VSeries>,
    r: Vec<VSeries>,
    m: Option<&BinModifier>,
    g: &Grid,
) -> Vec<VSeries> {
    let mt = matching(m);
    // Steps at which each right-hand signature is present.
    let mut right_steps: HashMap<Vec<u8>, Vec<bool>> = HashMap::default();
    for s in &r {
        let present = right_steps
            .entry(signature(&s.labels, mt.on, mt.names))
            .or_insert_with(|| vec![false; g.n]);
        for &(i, _) in &s.points {
            present[i as usize] = true;
        }
    }
    match op {
        Op::And | Op::Unless => {
            let want = op == Op::And;
            l.into_iter()
                .filter_map(|mut s| {
                    let sig = signature(&s.labels, mt.on, mt.names);
                    let present = right_steps.get(&sig);
                    s.points
                        .retain(|&(i, _)| present.is_some_and(|p| p[i as usize]) == want);
                    (!s.points.is_empty()).then_some(s)
                })
                .collect()
        }
        _ => {
            let mut left_steps: HashMap<Vec<u8>, Vec<bool>> = HashMap::default();
            for s in &l {
                let present = left_steps
                    .entry(signature(&s.labels, mt.on, mt.names))
                    .or_insert_with(|| vec![false; g.n]);
                for &(i, _) in &s.points {
                    present[i as usize] = true;
                }
            }
            let mut out = l;
            for mut s in r {
                let sig = signature(&s.labels, mt.on, mt.names);
                let present = left_steps.get(&sig);
                s.points
                    .retain(|&(i, _)| !present.is_some_and(|p| p[i as usize]));
                if !s.points.is_empty() {
                    out.push(s);
                }
            }
            out
        }
    }
}

fn vector_vector(
    ev: &mut Evaluator<'_>,
    op: Op,
    l: Vec<VSeries>,
    r: Vec<VSeries>,
    m: Option<&BinModifier>,
    return_bool: bool,
    g: &Grid,
) -> Result<Vec<VSeries>> {
    let mt = matching(m);
    let card = m
        .map(|m| &m.card)
        .unwrap_or(&VectorMatchCardinality::OneToOne);
    let (include, swap): (&[String], bool) = match card {
        VectorMatchCardinality::ManyToOne(ls) => (&ls.labels, false),
        VectorMatchCardinality::OneToMany(ls) => (&ls.labels, true),
        _ => (&[], false),
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    // "many" is the side whose series are kept; "one" supplies a partner.
    let (many, one) = if swap { (r, l) } else { (l, r) };
    let one_map = by_signature(&one, &mt);
    let drop = !op.is_comparison() || return_bool;

    // Per one-side signature and step: which series is there (the one side
    // must be unique per signature and step).
    let mut one_at: HashMap<&[u8], Vec<u32>> =
        HashMap::with_capacity_and_hasher(one_map.len(), Default::default());
    const NONE: u32 = u32::MAX;
    for (sig, idxs) in &one_map {
        let mut at = vec![NONE; g.n];
        for &si in idxs {
            for &(i, _) in &one[si].points {
                if at[i as usize] != NONE {
                    let side = if swap { "left" } else { "right" };
                    let mut names: Vec<String> = vec![
                        labels_string(&one[at[i as usize] as usize].labels),
                        labels_string(&one[si].labels),
                    ];
                    names.sort();
                    return Err(QueryError::execution(format!(
                        "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}];many-to-many matching not allowed: matching labels must be unique on one side",
                        match_group_string(&one[si].labels, &mt),
                        names.join(", ")
                    )));
                }
                at[i as usize] = si as u32;
            }
        }
        one_at.insert(sig.as_slice(), at);
    }

    // Result label sets are computed once per (many series, one series) pair.
    let mut result_labels: HashMap<(usize, u32), usize> = HashMap::default();
    let mut out: Vec<VSeries> = Vec::new();
    // Which result series already holds a point at a step, and from which
    // many-side series, to report duplicate results.
    let mut out_by_key: HashMap<Vec<u8>, usize> = HashMap::default();
    let mut owner: Vec<Vec<u32>> = Vec::new();
    let mut matched: HashMap<Vec<u8>, Vec<bool>> = HashMap::default();
    for (mi, ms) in many.iter().enumerate() {
        ev.check_deadline()?;
        let sig = signature(&ms.labels, mt.on, mt.names);
        let Some(at) = one_at.get(sig.as_slice()) else {
            continue;
        };
        for &(i, mv) in &ms.points {
            let oi = at[i as usize];
            if oi == NONE {
                continue;
            }
            let os = &one[oi as usize];
            // Points are in step order: a binary search keeps range
            // queries linear in their steps.
            let Ok(at_step) = os.points.binary_search_by_key(&i, |p| p.0) else {
                continue;
            };
            let ov = os.points[at_step].1;
            let (lv, rv) = if swap { (ov, mv) } else { (mv, ov) };
            // A comparison keeps the left operand's value, whichever side
            // is the many side.
            let (value, keep) = apply(op, lv, rv);
            if one_to_one {
                let seen = matched
                    .entry(sig.clone())
                    .or_insert_with(|| vec![false; g.n]);
                if seen[i as usize] {
                    return Err(QueryError::execution(format!(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right), found {}",
                        labels_string(&ms.labels)
                    )));
                }
                seen[i as usize] = true;
            }
            let value = if return_bool {
                if keep { 1.0 } else { 0.0 }
            } else if keep {
                value
            } else {
                continue;
            };
            let slot = match result_labels.get(&(mi, oi)) {
                Some(&s) => s,
                None => {
                    let labels = result_metric(&ms.labels, &os.labels, one_to_one, &mt, include);
                    let key = labels_key(&labels);
                    let s = match out_by_key.get(&key) {
                        Some(&s) => s,
                        None => {
                            out.push(VSeries {
                                labels,
                                drop_name: drop || ms.drop_name,
                                points: Vec::new(),
                            });
                            owner.push(vec![NONE; g.n]);
                            out_by_key.insert(key, out.len() - 1);
                            out.len() - 1
                        }
                    };
                    result_labels.insert((mi, oi), s);
                    s
                }
            };
            if owner[slot][i as usize] != NONE {
                return Err(QueryError::execution(if one_to_one {
                    format!(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right), found {}",
                        labels_string(&out[slot].labels)
                    )
                } else {
                    format!(
                        "multiple matches for labels: grouping labels must ensure unique matches, found {}",
                        labels_string(&out[slot].labels)
                    )
                }));
            }
            owner[slot][i as usize] = mi as u32;
            out[slot].points.push((i, value));
        }
    }
    for s in &mut out {
        s.points.sort_by_key(|p| p.0);
    }
    Ok(out)
}

fn match_group_string(l: &Labels, mt: &Matching<'_>) -> String {
    let names: Vec<&str> = mt.names.iter().map(String::as_str).collect();
    if mt.on {
        labels_string(&keep_labels(l, &names))
    } else {
        let mut n = names.clone();
        n.push(METRIC_NAME);
        labels_string(&without_labels(l, &n))
    }
}

/// Labels of a result: the many side's, narrowed for one-to-one matching,
/// plus the `group_x` labels copied from the one side.
fn result_metric(
    many: &Labels,
    one: &Labels,
    one_to_one: bool,
    mt: &Matching<'_>,
    include: &[String],
) -> Labels {
    let mut labels = many.clone();
    if one_to_one {
        let names: Vec<&str> = mt.names.iter().map(String::as_str).collect();
        if mt.on {
            // `on` keeps only the listed labels, the name included only when listed.
            labels = keep_labels(&labels, &names);
        } else {
            labels = without_labels(&labels, &names);
        }
    }
    for name in include {
        labels = set_label(&labels, name, one.get(name).unwrap_or(""));
    }
    labels
}
