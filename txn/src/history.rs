//! A checker for histories of list-append transactions, after Elle
//! (Kingsbury and Alvaro, "Elle: Inferring Isolation Anomalies from
//! Experimental Observations", VLDB 2020).
//!
//! Clients run transactions of two kinds of operation on integer keys: append
//! a unique value to the key's list, or read the whole list. Because every
//! value is unique and lists only grow, reads reveal the order in which
//! appends were applied (the *version order*) and who read whose writes. From
//! that the checker builds Adya's dependency graph between committed
//! transactions:
//!
//! - `ww`: T1 appended an element and T2 the next one of the same key;
//! - `wr`: T2 read a list whose last element T1 appended;
//! - `rw`: T1 read a list and T2 appended the element after its last one.
//!
//! and reports: G0 (a cycle of `ww` edges), G1a (a committed transaction read
//! an aborted one's append), G1b (it read a list ending in an append that was
//! not its writer's last to that key), G1c (a cycle of `ww`/`wr` edges),
//! G-single (a cycle with exactly one `rw` edge: read skew), and G2 (any
//! cycle with `rw` edges; forbidden only under SERIALIZABLE). Reads that are
//! not prefixes of one another are reported as an incompatible order.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::shard::Isolation;

/// One operation as the client observed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Append { key: u64, value: u64 },
    Read { key: u64, values: Vec<u64> },
}

/// How a transaction ended, as far as the client knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    Aborted,
    /// The client could not tell (a crash or lost reply).
    Unknown,
}

/// A transaction as the client recorded it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub ops: Vec<Op>,
    pub outcome: Outcome,
}

/// Kinds of dependency edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Edge {
    WW,
    WR,
    RW,
}

/// An anomaly, naming the transactions involved (indices into the history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly {
    G0 {
        cycle: Vec<usize>,
    },
    G1a {
        reader: usize,
        writer: usize,
        key: u64,
        value: u64,
    },
    G1b {
        reader: usize,
        writer: usize,
        key: u64,
        value: u64,
    },
    G1c {
        cycle: Vec<usize>,
    },
    GSingle {
        cycle: Vec<usize>,
    },
    G2 {
        cycle: Vec<usize>,
    },
    IncompatibleOrder {
        key: u64,
        a: Vec<u64>,
        b: Vec<u64>,
    },
    DuplicateAppend {
        key: u64,
        value: u64,
    },
    /// A transaction's read of a key it appended to did not end with its own appends.
    Internal {
        txn: usize,
        key: u64,
    },
}

/// The dependency graph: adjacency per transaction, with edge kinds.
type Graph = HashMap<usize, Vec<(usize, Edge)>>;

/// Checks a history; returns every anomaly forbidden at `level`.
pub fn check(history: &[Recorded], level: Isolation) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    // Who appended each value, and at which of its appends to that key.
    let mut writer: HashMap<(u64, u64), (usize, usize)> = HashMap::new();
    let mut appends_per_key: HashMap<(usize, u64), usize> = HashMap::new();
    for (t, txn) in history.iter().enumerate() {
        for op in &txn.ops {
            if let Op::Append { key, value } = *op {
                let n = appends_per_key.entry((t, key)).or_insert(0);
                if writer.insert((key, value), (t, *n)).is_some() {
                    anomalies.push(Anomaly::DuplicateAppend { key, value });
                }
                *n += 1;
            }
        }
    }
    let committed = |t: usize| history[t].outcome == Outcome::Committed;

    // External reads of committed transactions: own appends stripped.
    let mut reads: Vec<(usize, u64, Vec<u64>)> = Vec::new();
    for (t, txn) in history.iter().enumerate().filter(|(t, _)| committed(*t)) {
        let mut own: HashMap<u64, Vec<u64>> = HashMap::new();
        for op in &txn.ops {
            match op {
                Op::Append { key, value } => own.entry(*key).or_default().push(*value),
                Op::Read { key, values } => {
                    let mine = own.get(key).map_or(&[][..], Vec::as_slice);
                    if !values.ends_with(mine) {
                        anomalies.push(Anomaly::Internal { txn: t, key: *key });
                        continue;
                    }
                    reads.push((t, *key, values[..values.len() - mine.len()].to_vec()));
                }
            }
        }
    }

    // G1a and G1b.
    for (reader, key, values) in &reads {
        for &value in values {
            if let Some(&(w, _)) = writer.get(&(*key, value))
                && history[w].outcome == Outcome::Aborted
            {
                anomalies.push(Anomaly::G1a { reader: *reader, writer: w, key: *key, value });
            }
        }
        // The last element read must be its writer's last append to the key.
        if let Some(&last) = values.last()
            && let Some(&(w, pos)) = writer.get(&(*key, last))
            && w != *reader
            && pos + 1 < appends_per_key[&(w, *key)]
        {
            anomalies.push(Anomaly::G1b { reader: *reader, writer: w, key: *key, value: last });
        }
    }

    // Version order per key: the longest read; every read must be a prefix.
    let mut order: HashMap<u64, Vec<u64>> = HashMap::new();
    for (_, key, values) in &reads {
        let longest = order.entry(*key).or_default();
        let (short, long) =
            if values.len() <= longest.len() { (values, &*longest) } else { (&*longest, values) };
        if !long.starts_with(short) {
            anomalies.push(Anomaly::IncompatibleOrder {
                key: *key,
                a: longest.clone(),
                b: values.clone(),
            });
            continue;
        }
        if values.len() > longest.len() {
            *longest = values.clone();
        }
    }

    let mut graph: Graph = HashMap::new();
    let mut add = |from: usize, to: usize, kind: Edge| {
        if from != to && committed(from) && committed(to) {
            graph.entry(from).or_default().push((to, kind));
        }
    };
    let w = |key: u64, value: u64| writer.get(&(key, value)).map(|&(t, _)| t);
    for (key, versions) in &order {
        for pair in versions.windows(2) {
            if let (Some(a), Some(b)) = (w(*key, pair[0]), w(*key, pair[1])) {
                add(a, b, Edge::WW);
            }
        }
    }
    for (reader, key, values) in &reads {
        if let Some(&last) = values.last()
            && let Some(a) = w(*key, last)
        {
            add(a, *reader, Edge::WR);
        }
        if let Some(&next) = order.get(key).and_then(|o| o.get(values.len()))
            && let Some(b) = w(*key, next)
        {
            add(*reader, b, Edge::RW);
        }
    }

    if let Some(cycle) = find_cycle(&graph, &[Edge::WW]) {
        anomalies.push(Anomaly::G0 { cycle });
    } else if let Some(cycle) = find_cycle(&graph, &[Edge::WW, Edge::WR]) {
        anomalies.push(Anomaly::G1c { cycle });
    } else if let Some(cycle) = find_single_rw_cycle(&graph) {
        anomalies.push(Anomaly::GSingle { cycle });
    } else if level == Isolation::Serializable
        && let Some(cycle) = find_cycle(&graph, &[Edge::WW, Edge::WR, Edge::RW])
    {
        anomalies.push(Anomaly::G2 { cycle });
    }
    anomalies
}

fn successors<'g>(
    graph: &'g Graph,
    node: usize,
    kinds: &'g [Edge],
) -> impl Iterator<Item = usize> + 'g {
    graph.get(&node).into_iter().flatten().filter(move |(_, k)| kinds.contains(k)).map(|(n, _)| *n)
}

/// A cycle using only edges of `kinds`, by iterative depth-first search.
fn find_cycle(graph: &Graph, kinds: &[Edge]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: HashMap<usize, Mark> = HashMap::new();
    let mut roots: Vec<usize> = graph.keys().copied().collect();
    roots.sort_unstable();
    for root in roots {
        if marks.contains_key(&root) {
            continue;
        }
        let mut stack: Vec<(usize, Vec<usize>)> =
            vec![(root, successors(graph, root, kinds).collect())];
        marks.insert(root, Mark::Open);
        while let Some((node, pending)) = stack.last_mut() {
            let node = *node;
            match pending.pop() {
                Some(next) => match marks.get(&next) {
                    Some(Mark::Open) => {
                        let start = stack
                            .iter()
                            .position(|(n, _)| *n == next)
                            .expect("open nodes are on the stack");
                        return Some(stack[start..].iter().map(|(n, _)| *n).collect());
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(next, Mark::Open);
                        stack.push((next, successors(graph, next, kinds).collect()));
                    }
                },
                None => {
                    marks.insert(node, Mark::Done);
                    stack.pop();
                }
            }
        }
    }
    None
}

/// A cycle with exactly one `rw` edge: an `rw` edge `r -> w` where `w`
/// reaches `r` through `ww`/`wr` edges.
fn find_single_rw_cycle(graph: &Graph) -> Option<Vec<usize>> {
    let mut rw: Vec<(usize, usize)> = graph
        .iter()
        .flat_map(|(&from, out)| {
            out.iter().filter(|(_, k)| *k == Edge::RW).map(move |&(to, _)| (from, to))
        })
        .collect();
    rw.sort_unstable();
    let mut reach_cache: HashMap<usize, HashMap<usize, usize>> = HashMap::new();
    for (r, w) in rw {
        // Breadth-first search from w over ww/wr edges, remembering parents.
        let parents = reach_cache.entry(w).or_insert_with(|| {
            let mut parents = HashMap::new();
            let mut queue = VecDeque::from([w]);
            let mut seen = HashSet::from([w]);
            while let Some(n) = queue.pop_front() {
                for next in successors(graph, n, &[Edge::WW, Edge::WR]) {
                    if seen.insert(next) {
                        parents.insert(next, n);
                        queue.push_back(next);
                    }
                }
            }
            parents
        });
        if parents.contains_key(&r) {
            let mut cycle = vec![r];
            let mut n = r;
            while n != w {
                n = parents[&n];
                cycle.push(n);
            }
            cycle.reverse();
            return Some(cycle);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use Op::*;
    use Outcome::*;

    fn txn(outcome: Outcome, ops: Vec<Op>) -> Recorded {
        Recorded { ops, outcome }
    }

    fn read(key: u64, values: &[u64]) -> Op {
        Read { key, values: values.to_vec() }
    }

    fn kinds(anomalies: &[Anomaly]) -> Vec<&'static str> {
        anomalies
            .iter()
            .map(|a| match a {
                Anomaly::G0 { .. } => "G0",
                Anomaly::G1a { .. } => "G1a",
                Anomaly::G1b { .. } => "G1b",
                Anomaly::G1c { .. } => "G1c",
                Anomaly::GSingle { .. } => "G-single",
                Anomaly::G2 { .. } => "G2",
                Anomaly::IncompatibleOrder { .. } => "incompatible-order",
                Anomaly::DuplicateAppend { .. } => "duplicate",
                Anomaly::Internal { .. } => "internal",
            })
            .collect()
    }

    #[test]
    fn serial_history_is_clean() {
        let h = vec![
            txn(Committed, vec![Append { key: 1, value: 1 }, Append { key: 2, value: 1 }]),
            txn(Committed, vec![read(1, &[1]), Append { key: 1, value: 2 }, read(1, &[1, 2])]),
            txn(Committed, vec![read(1, &[1, 2]), read(2, &[1])]),
        ];
        assert!(check(&h, Isolation::Serializable).is_empty());
    }

    #[test]
    fn aborted_and_intermediate_reads() {
        let h = vec![
            txn(Aborted, vec![Append { key: 1, value: 1 }]),
            txn(Committed, vec![read(1, &[1])]),
        ];
        assert_eq!(kinds(&check(&h, Isolation::Snapshot)), ["G1a"]);
        let h = vec![
            txn(Committed, vec![Append { key: 1, value: 1 }, Append { key: 1, value: 2 }]),
            txn(Committed, vec![read(1, &[1])]),
        ];
        assert!(kinds(&check(&h, Isolation::Snapshot)).contains(&"G1b"));
    }

    #[test]
    fn dirty_write_cycle_is_g0() {
        // T0 then T1 on key 1, T1 then T0 on key 2.
        let h = vec![
            txn(Committed, vec![Append { key: 1, value: 1 }, Append { key: 2, value: 2 }]),
            txn(Committed, vec![Append { key: 1, value: 2 }, Append { key: 2, value: 1 }]),
            txn(Committed, vec![read(1, &[1, 2]), read(2, &[1, 2])]),
        ];
        assert_eq!(kinds(&check(&h, Isolation::Snapshot)), ["G0"]);
    }

    #[test]
    fn circular_information_flow_is_g1c() {
        let h = vec![
            txn(Committed, vec![Append { key: 1, value: 1 }, read(2, &[1])]),
            txn(Committed, vec![Append { key: 2, value: 1 }, read(1, &[1])]),
        ];
        assert_eq!(kinds(&check(&h, Isolation::Snapshot)), ["G1c"]);
    }

    #[test]
    fn read_skew_is_g_single() {
        // T2 reads key 1 before T1's append but key 2 after it.
        let h = vec![
            txn(Committed, vec![Append { key: 1, value: 1 }, Append { key: 2, value: 1 }]),
            txn(Committed, vec![read(1, &[]), read(2, &[1])]),
            txn(Committed, vec![read(1, &[1])]),
        ];
        assert_eq!(kinds(&check(&h, Isolation::Snapshot)), ["G-single"]);
    }

    #[test]
    fn write_skew_is_g2_only_under_serializable() {
        let h = vec![
            txn(Committed, vec![read(1, &[]), read(2, &[]), Append { key: 1, value: 1 }]),
            txn(Committed, vec![read(1, &[]), read(2, &[]), Append { key: 2, value: 1 }]),
            txn(Committed, vec![read(1, &[1]), read(2, &[1])]),
        ];
        assert!(check(&h, Isolation::Snapshot).is_empty());
        assert_eq!(kinds(&check(&h, Isolation::Serializable)), ["G2"]);
    }

    #[test]
    fn diverging_reads_are_an_incompatible_order() {
        let h = vec![
            txn(Committed, vec![Append { key: 1, value: 1 }]),
            txn(Committed, vec![Append { key: 1, value: 2 }]),
            txn(Committed, vec![read(1, &[1, 2])]),
            txn(Committed, vec![read(1, &[2])]),
        ];
        assert!(kinds(&check(&h, Isolation::Snapshot)).contains(&"incompatible-order"));
    }
}
