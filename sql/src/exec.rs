//! The executor: pull-based operators, one per plan node.
//!
//! Each operator yields rows on demand ([`Operator::next`]), so a `LIMIT 1`
//! over a large table reads a few rows. Operators that must see all their
//! input first (sort, the build side of a join, hash aggregation, set
//! operations) charge what they hold to the query's memory budget and fail
//! with SQLSTATE 53200 when it is exceeded, rather than exhausting the process.
//! A top-N sort holds at most `limit + offset` rows and gives back what it
//! drops ([`Cx::release`]); stream aggregation and the index nested-loop join
//! hold one group or one outer row's lookup at a time.
//!
//! Invariants the planner relies on: filters, projections, DISTINCT, both
//! aggregations and the joins keep the order of their (left) input, and
//! aggregation emits groups in the order their first rows arrive; sorts are
//! stable.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::Instant;

use strata_lsm::KeyRange;
use strata_txn::{Txn, TxnScan};

use crate::catalog::{PRIMARY_INDEX, Table};
use crate::encoding::{decode_row, decode_row_columns, encode_key};
use crate::error::{Result, SqlError, sqlstate};
use crate::expr::{Accumulator, Expr, truth};
use crate::plan::{Access, JoinKind, Node, SetOpKind, SortKey};
use crate::types::{DataType, Value};

/// A row of values.
pub type Row = Vec<Value>;

/// A flag another thread raises to cancel the statement a session is running
/// (a wire-protocol CancelRequest, Ctrl-C in the shell). Cheap to clone; all
/// clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Asks the running statement to stop; it fails with SQLSTATE 57014.
    pub fn cancel(&self) {
        self.0.store(true, AtomicOrdering::Release);
    }

    /// Clears a cancel request that arrived between statements.
    pub fn reset(&self) {
        self.0.store(false, AtomicOrdering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(AtomicOrdering::Acquire)
    }
}

/// What bounds one statement: memory for materializing operators, a cancel
/// flag and an optional deadline (`statement_timeout`).
#[derive(Clone, Debug)]
pub struct Limits {
    pub memory: usize,
    pub interrupt: Interrupt,
    pub deadline: Option<Instant>,
}

impl Limits {
    /// Only a memory bound: nothing can interrupt the statement.
    pub fn memory(memory: usize) -> Limits {
        Limits { memory, interrupt: Interrupt::default(), deadline: None }
    }
}

/// How many rows pass between deadline checks (reading the clock per row
/// would cost more than the row).
const DEADLINE_CHECK_INTERVAL: u32 = 256;

/// Per-statement execution context.
pub struct Cx<'a> {
    pub txn: &'a mut Txn,
    params: &'a [Value],
    outer: Vec<Row>,
    statement_micros: i64,
    memory_used: usize,
    limits: &'a Limits,
    rows_since_deadline_check: u32,
    /// Per-node row counts and time, when running EXPLAIN ANALYZE.
    pub profile: Option<Rc<RefCell<Profile>>>,
}

impl std::fmt::Debug for Cx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cx")
            .field("outer_depth", &self.outer.len())
            .field("memory_used", &self.memory_used)
            .finish_non_exhaustive()
    }
}

/// What EXPLAIN ANALYZE measured, by node address.
#[derive(Debug, Default)]
pub struct Profile {
    pub nodes: HashMap<usize, (u64, u128)>,
}

impl<'a> Cx<'a> {
    pub fn new(
        txn: &'a mut Txn,
        params: &'a [Value],
        statement_micros: i64,
        limits: &'a Limits,
    ) -> Cx<'a> {
        Cx {
            txn,
            params,
            outer: Vec::new(),
            statement_micros,
            memory_used: 0,
            limits,
            rows_since_deadline_check: 0,
            profile: None,
        }
    }

    /// Fails with SQLSTATE 57014 once the statement was cancelled or ran past
    /// its deadline. Operators that produce rows from storage call it per row.
    pub fn check_interrupt(&mut self) -> Result<()> {
        if self.limits.interrupt.is_cancelled() {
            return Err(SqlError::new(
                sqlstate::QUERY_CANCELED,
                "canceling statement due to user request",
            ));
        }
        if let Some(deadline) = self.limits.deadline {
            self.rows_since_deadline_check += 1;
            if self.rows_since_deadline_check >= DEADLINE_CHECK_INTERVAL {
                self.rows_since_deadline_check = 0;
                if Instant::now() >= deadline {
                    return Err(SqlError::new(
                        sqlstate::QUERY_CANCELED,
                        "canceling statement due to statement timeout",
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn param(&self, i: usize) -> Result<Value> {
        self.params.get(i).cloned().ok_or_else(|| {
            SqlError::new(
                sqlstate::UNDEFINED_PARAMETER,
                format!("there is no parameter ${}", i + 1),
            )
        })
    }

    pub fn outer_value(&self, depth: usize, index: usize) -> Result<Value> {
        let row = self
            .outer
            .len()
            .checked_sub(depth)
            .and_then(|i| self.outer.get(i))
            .ok_or_else(|| SqlError::internal("outer reference without an outer row"))?;
        Ok(row[index].clone())
    }

    /// The statement's timestamp (`now()`), in microseconds since 2000-01-01.
    pub fn statement_timestamp_micros(&self) -> i64 {
        self.statement_micros
    }

    /// Gives back `bytes` charged earlier and no longer held.
    pub fn release(&mut self, bytes: usize) {
        self.memory_used = self.memory_used.saturating_sub(bytes);
    }

    /// Charges `bytes` of memory held by a materializing operator.
    pub fn charge(&mut self, bytes: usize) -> Result<()> {
        self.memory_used += bytes;
        if self.memory_used > self.limits.memory {
            return Err(SqlError::new(sqlstate::OUT_OF_MEMORY, "out of memory").with_detail(format!(
                "The query needs more than its limit of {} bytes for sorting, hashing or grouping.",
                self.limits.memory
            )));
        }
        Ok(())
    }
}

/// Approximate bytes a row holds.
pub fn row_size(row: &[Value]) -> usize {
    row.iter()
        .map(|v| {
            32 + match v {
                Value::Text(s) => s.len(),
                Value::Bytes(b) => b.len(),
                _ => 0,
            }
        })
        .sum()
}

/// A running operator.
pub trait Operator {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>>;
}

/// Runs `plan` as a subquery of the row `row`; returns all its rows.
pub fn run_subquery(plan: &Node, row: &[Value], cx: &mut Cx<'_>) -> Result<Vec<Row>> {
    cx.outer.push(row.to_vec());
    let result = (|| {
        let mut op = build(plan);
        let mut out = Vec::new();
        while let Some(r) = op.next(cx)? {
            cx.charge(row_size(&r))?;
            out.push(r);
        }
        Ok(out)
    })();
    cx.outer.pop();
    result
}

/// Whether the subquery `plan` of row `row` yields any row.
pub fn subquery_has_rows(plan: &Node, row: &[Value], cx: &mut Cx<'_>) -> Result<bool> {
    cx.outer.push(row.to_vec());
    let result = build(plan).next(cx).map(|r| r.is_some());
    cx.outer.pop();
    result
}

/// Builds the operator tree of `node`.
pub fn build(node: &Node) -> Box<dyn Operator + '_> {
    let op: Box<dyn Operator + '_> = match node {
        Node::Values { rows } => Box::new(ValuesOp { rows, next: 0 }),
        Node::Series { start, stop, step } => {
            Box::new(SeriesOp { bounds: (start, stop, step.as_ref()), state: None })
        }
        Node::Scan { table, access, for_update, needed } => Box::new(ScanOp {
            table,
            access,
            for_update: *for_update,
            decoder: RowDecoder::new(table, needed.clone()),
            state: ScanState::Init,
        }),
        Node::Filter { input, predicate } => Box::new(FilterOp { input: build(input), predicate }),
        Node::Project { input, exprs } => Box::new(ProjectOp { input: build(input), exprs }),
        Node::Aggregate { input, group_by, aggs, streaming: false } => {
            Box::new(AggregateOp { input: build(input), group_by, aggs, output: None })
        }
        Node::Aggregate { input, group_by, aggs, streaming: true } => Box::new(StreamAggregateOp {
            input: build(input),
            group_by,
            aggs,
            current: None,
            done: false,
        }),
        Node::Sort { input, keys } => Box::new(SortOp { input: build(input), keys, sorted: None }),
        Node::TopN { input, keys, limit, offset } => {
            Box::new(TopNOp { input: build(input), keys, limit, offset, sorted: None })
        }
        Node::Limit { input, limit, offset } => {
            Box::new(LimitOp { input: build(input), limit, offset, bounds: None, seen: 0 })
        }
        Node::Distinct { input } => {
            Box::new(DistinctOp { input: build(input), seen: HashMap::new() })
        }
        Node::Join { left, right, kind, equi, on, left_width, right_width } => Box::new(JoinOp {
            left: build(left),
            right_node: right,
            kind: *kind,
            equi,
            on: on.as_ref(),
            left_width: *left_width,
            right_width: *right_width,
            built: None,
            pending: Vec::new(),
            left_done: false,
            tail: None,
        }),
        Node::IndexJoin {
            left,
            table,
            index,
            lookup,
            right_filter,
            kind,
            equi,
            on,
            left_width: _,
            right_width,
            for_update,
        } => Box::new(IndexJoinOp {
            left: build(left),
            table,
            index: *index,
            lookup,
            right_filter: right_filter.as_ref(),
            kind: *kind,
            equi,
            on: on.as_ref(),
            right_width: *right_width,
            for_update: *for_update,
            decoder: RowDecoder::new(table, None),
            profile_id: inner_profile_id(node),
            current: None,
        }),
        Node::SetOp { op, all, left, right } => Box::new(SetOpOp {
            op: *op,
            all: *all,
            left: build(left),
            right_node: right,
            right: None,
            counts: None,
            emitted: HashMap::new(),
        }),
    };
    op_with_profile(node, op)
}

fn op_with_profile<'p>(node: &'p Node, op: Box<dyn Operator + 'p>) -> Box<dyn Operator + 'p> {
    Box::new(Profiled { id: node as *const Node as usize, inner: op })
}

/// Counts rows and time per node when a profile is being collected.
struct Profiled<'p> {
    id: usize,
    inner: Box<dyn Operator + 'p>,
}

impl Operator for Profiled<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        let Some(profile) = cx.profile.clone() else { return self.inner.next(cx) };
        let started = Instant::now();
        let row = self.inner.next(cx)?;
        let mut p = profile.borrow_mut();
        let entry = p.nodes.entry(self.id).or_default();
        entry.0 += u64::from(row.is_some());
        entry.1 += started.elapsed().as_nanos();
        Ok(row)
    }
}

struct ValuesOp<'p> {
    rows: &'p [Vec<Expr>],
    next: usize,
}

impl Operator for ValuesOp<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        cx.check_interrupt()?;
        let Some(exprs) = self.rows.get(self.next) else { return Ok(None) };
        self.next += 1;
        exprs.iter().map(|e| e.eval(&[], cx)).collect::<Result<Row>>().map(Some)
    }
}

/// `generate_series`: evaluates its bounds on the first call, then counts.
struct SeriesOp<'p> {
    bounds: (&'p Expr, &'p Expr, Option<&'p Expr>),
    /// (next value, stop, step); `None` before the first call.
    state: Option<Option<(i64, i64, i64)>>,
}

impl Operator for SeriesOp<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        cx.check_interrupt()?;
        if self.state.is_none() {
            let (start, stop, step) = self.bounds;
            let int = |v: Value| match v {
                Value::Int(i) => Some(i),
                _ => None,
            };
            let start = int(start.eval(&[], cx)?);
            let stop = int(stop.eval(&[], cx)?);
            let step = match step {
                Some(s) => int(s.eval(&[], cx)?),
                None => Some(1),
            };
            if step == Some(0) {
                return Err(SqlError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    "step size cannot equal zero",
                ));
            }
            // A NULL bound or step gives no rows, as in PostgreSQL.
            self.state = Some(start.zip(stop).zip(step).map(|((a, b), s)| (a, b, s)));
        }
        let Some(Some((next, stop, step))) = self.state else { return Ok(None) };
        if (step > 0 && next > stop) || (step < 0 && next < stop) {
            return Ok(None);
        }
        // Past i64's range there is nothing more to count.
        self.state = Some(next.checked_add(step).map(|n| (n, stop, step)));
        Ok(Some(vec![Value::Int(next)]))
    }
}

/// `v` as a key value of type `ty`, or `None` if no key of that type can
/// equal it (NULL, or not exactly representable: `int_col = 2.5`).
pub fn exact_key_value(v: Value, ty: &DataType) -> Option<Value> {
    if v.is_null() {
        return None;
    }
    let cast = v.cast(ty).ok()?;
    (cast.sql_cmp(&v) == Some(Ordering::Equal)).then_some(cast)
}

/// A key prefix followed by encoded key values; `None` if a value cannot match.
fn encode_prefix(
    prefix: Vec<u8>,
    values: &[Expr],
    types: &[DataType],
    cx: &mut Cx<'_>,
) -> Result<Option<Vec<u8>>> {
    let mut key = prefix;
    for (e, ty) in values.iter().zip(types) {
        let Some(v) = exact_key_value(e.eval(&[], cx)?, ty) else { return Ok(None) };
        encode_key(&mut key, &v, ty, false);
    }
    Ok(Some(key))
}

enum ScanState {
    Init,
    Rows(TxnScan),
    /// Index entries whose values are primary keys.
    Index(TxnScan),
    /// A row already read by a point lookup (or none).
    Fetched(Option<Row>),
    Done,
}

/// Reads the row with primary key `key` (`FOR UPDATE`: also validated at
/// commit).
fn fetch(
    decoder: &RowDecoder,
    for_update: bool,
    key: &[u8],
    cx: &mut Cx<'_>,
) -> Result<Option<Row>> {
    let value = if for_update { cx.txn.get_for_update(key)? } else { cx.txn.get(key)? };
    value.map(|v| decoder.decode(&v)).transpose()
}

/// Decodes a table's stored rows: the column types, computed once per
/// operator, and the columns the plan reads (the rest are skipped, NULL).
struct RowDecoder {
    types: Vec<DataType>,
    needed: Option<Arc<[bool]>>,
}

impl RowDecoder {
    fn new(table: &Table, needed: Option<Arc<[bool]>>) -> RowDecoder {
        RowDecoder { types: table.column_types(), needed }
    }

    fn decode(&self, value: &[u8]) -> Result<Row> {
        match &self.needed {
            Some(needed) => decode_row_columns(value, &self.types, needed),
            None => decode_row(value, &self.types),
        }
    }
}

/// The next row of an open scan of `table`: a primary-key entry is the row,
/// a secondary index entry leads to it.
fn scan_next(
    table: &Table,
    decoder: &RowDecoder,
    for_update: bool,
    state: &mut ScanState,
    cx: &mut Cx<'_>,
) -> Result<Option<Row>> {
    match state {
        ScanState::Init | ScanState::Done => Ok(None),
        ScanState::Fetched(row) => {
            let row = row.take();
            *state = ScanState::Done;
            Ok(row)
        }
        ScanState::Rows(scan) => match scan.next() {
            None => {
                *state = ScanState::Done;
                Ok(None)
            }
            Some(row) => {
                let (key, value) = row?;
                if for_update {
                    cx.txn.get_for_update(&key)?;
                }
                decoder.decode(&value).map(Some)
            }
        },
        ScanState::Index(scan) => match scan.next() {
            None => {
                *state = ScanState::Done;
                Ok(None)
            }
            Some(entry) => {
                let (_, pk) = entry?;
                let mut key = table.index_prefix(PRIMARY_INDEX);
                key.extend_from_slice(&pk);
                fetch(decoder, for_update, &key, cx)?.map(Some).ok_or_else(|| {
                    SqlError::new(
                        sqlstate::DATA_CORRUPTED,
                        format!("index entry of table \"{}\" points at a missing row", table.name),
                    )
                })
            }
        },
    }
}

fn index_types(table: &Table, index: u32) -> Result<Vec<DataType>> {
    let columns = if index == PRIMARY_INDEX {
        &table.primary_key
    } else {
        &table
            .indexes
            .iter()
            .find(|i| i.id == index)
            .ok_or_else(|| SqlError::internal("index vanished"))?
            .columns
    };
    Ok(columns.iter().map(|&c| table.columns[c].ty.clone()).collect())
}

/// The keys that start with `prefix` and whose next key column, of type
/// `ty`, lies within `lower` and `upper` (value, inclusive). A bound that no
/// key value equals (`int_col > 2.5`, a NULL) leaves that end open: the
/// filter above decides (cast and bounded, 2.5 would become 3, and `> 3`
/// would skip the 3 that `> 2.5` keeps). Any bound skips the NULLs of the
/// column, which sort first and satisfy no comparison.
fn bounded_range(
    prefix: Vec<u8>,
    ty: &DataType,
    lower: &Option<(Expr, bool)>,
    upper: &Option<(Expr, bool)>,
    cx: &mut Cx<'_>,
) -> Result<KeyRange> {
    use std::ops::Bound::*;
    let mut bound = |b: &Option<(Expr, bool)>| -> Result<Option<(Vec<u8>, bool)>> {
        let Some((e, inclusive)) = b else { return Ok(None) };
        let Some(v) = exact_key_value(e.eval(&[], cx)?, ty) else { return Ok(None) };
        let mut k = prefix.clone();
        encode_key(&mut k, &v, ty, false);
        Ok(Some((k, *inclusive)))
    };
    let (lo, hi) = (bound(lower)?, bound(upper)?);
    let above_nulls = || {
        let mut k = prefix.clone();
        encode_key(&mut k, &Value::Null, ty, false);
        strata_lsm::prefix_successor(&k).map_or(Unbounded, Included)
    };
    let lower = match lo {
        Some((k, true)) => Included(k),
        Some((k, false)) => strata_lsm::prefix_successor(&k).map_or(Unbounded, Included),
        None if lower.is_some() || upper.is_some() => above_nulls(),
        None => Included(prefix.clone()),
    };
    let upper = match hi {
        Some((k, true)) => strata_lsm::prefix_successor(&k).map_or(Unbounded, Excluded),
        Some((k, false)) => Excluded(k),
        None => strata_lsm::prefix_successor(&prefix).map_or(Unbounded, Excluded),
    };
    Ok(KeyRange { lower, upper })
}

struct ScanOp<'p> {
    table: &'p Table,
    access: &'p Access,
    for_update: bool,
    decoder: RowDecoder,
    state: ScanState,
}

impl ScanOp<'_> {
    fn open(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        let t = self.table;
        let primary = t.index_prefix(PRIMARY_INDEX);
        let (range, reverse) = match self.access {
            Access::Full => (t.index_range(PRIMARY_INDEX), false),
            Access::PrimaryPoint(exprs) => {
                self.state = ScanState::Done;
                let types = index_types(t, PRIMARY_INDEX)?;
                let Some(key) = encode_prefix(primary, exprs, &types, cx)? else {
                    return Ok(None);
                };
                return fetch(&self.decoder, self.for_update, &key, cx);
            }
            Access::PrimaryRange { eq, lower, upper, reverse } => {
                let types = index_types(t, PRIMARY_INDEX)?;
                let Some(prefix) = encode_prefix(primary, eq, &types, cx)? else {
                    self.state = ScanState::Done;
                    return Ok(None);
                };
                (bounded_range(prefix, &types[eq.len()], lower, upper, cx)?, *reverse)
            }
            Access::IndexEq { index, eq, lower, upper, reverse } => {
                let types = index_types(t, *index)?;
                let Some(prefix) = encode_prefix(t.index_prefix(*index), eq, &types, cx)? else {
                    self.state = ScanState::Done;
                    return Ok(None);
                };
                let range = match types.get(eq.len()) {
                    Some(ty) => bounded_range(prefix, ty, lower, upper, cx)?,
                    None => KeyRange::prefix(&prefix),
                };
                self.state = ScanState::Index(cx.txn.scan(range, *reverse)?);
                return self.next(cx);
            }
        };
        self.state = ScanState::Rows(cx.txn.scan(range, reverse)?);
        self.next(cx)
    }
}

impl Operator for ScanOp<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        cx.check_interrupt()?;
        match self.state {
            ScanState::Init => self.open(cx),
            _ => scan_next(self.table, &self.decoder, self.for_update, &mut self.state, cx),
        }
    }
}

struct FilterOp<'p> {
    input: Box<dyn Operator + 'p>,
    predicate: &'p Expr,
}

impl Operator for FilterOp<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        while let Some(row) = self.input.next(cx)? {
            cx.check_interrupt()?;
            if truth(&self.predicate.eval(&row, cx)?)? == Some(true) {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }
}

struct ProjectOp<'p> {
    input: Box<dyn Operator + 'p>,
    exprs: &'p [Expr],
}

impl Operator for ProjectOp<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        let Some(row) = self.input.next(cx)? else { return Ok(None) };
        self.exprs.iter().map(|e| e.eval(&row, cx)).collect::<Result<Row>>().map(Some)
    }
}

/// Values compared and hashed as GROUP BY does: NULLs equal, numbers by value.
#[derive(Clone, Debug)]
pub struct GroupKey(pub Row);

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| a.group_eq(b))
    }
}
impl Eq for GroupKey {}
impl Hash for GroupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for v in &self.0 {
            v.hash_key(state);
        }
    }
}

struct AggregateOp<'p> {
    input: Box<dyn Operator + 'p>,
    group_by: &'p [Expr],
    aggs: &'p [crate::expr::AggCall],
    output: Option<std::vec::IntoIter<Row>>,
}

impl AggregateOp<'_> {
    fn compute(&mut self, cx: &mut Cx<'_>) -> Result<Vec<Row>> {
        let mut index: HashMap<GroupKey, usize> = HashMap::new();
        let mut groups: Vec<(Row, Vec<Accumulator>)> = Vec::new();
        while let Some(row) = self.input.next(cx)? {
            let key: Row = self.group_by.iter().map(|e| e.eval(&row, cx)).collect::<Result<_>>()?;
            let slot = match index.get(&GroupKey(key.clone())) {
                Some(&i) => i,
                None => {
                    cx.charge(row_size(&key) + 64 * self.aggs.len())?;
                    groups.push((key.clone(), self.aggs.iter().map(Accumulator::new).collect()));
                    index.insert(GroupKey(key), groups.len() - 1);
                    groups.len() - 1
                }
            };
            for (acc, call) in groups[slot].1.iter_mut().zip(self.aggs) {
                let args =
                    call.args.iter().map(|a| a.eval(&row, cx)).collect::<Result<Vec<_>>>()?;
                acc.add(call, args)?;
            }
        }
        // Without GROUP BY, an aggregate over no rows still yields one row.
        if groups.is_empty() && self.group_by.is_empty() {
            groups.push((Vec::new(), self.aggs.iter().map(Accumulator::new).collect()));
        }
        groups
            .into_iter()
            .map(|(mut key, accs)| {
                for (acc, call) in accs.into_iter().zip(self.aggs) {
                    key.push(acc.finish(call)?);
                }
                Ok(key)
            })
            .collect()
    }
}

impl Operator for AggregateOp<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        if self.output.is_none() {
            let rows = self.compute(cx)?;
            self.output = Some(rows.into_iter());
        }
        Ok(self.output.as_mut().expect("computed").next())
    }
}

/// Aggregation of input that arrives grouped (the planner proved the rows of
/// a group adjacent): one group's accumulators at a time, emitted when the
/// next group starts, in arrival order like [`AggregateOp`]. Only with GROUP
/// BY (no input then means no groups).
struct StreamAggregateOp<'p> {
    input: Box<dyn Operator + 'p>,
    group_by: &'p [Expr],
    aggs: &'p [crate::expr::AggCall],
    current: Option<(Row, Vec<Accumulator>)>,
    done: bool,
}

impl StreamAggregateOp<'_> {
    fn finish(&self, (mut key, accs): (Row, Vec<Accumulator>)) -> Result<Row> {
        for (acc, call) in accs.into_iter().zip(self.aggs) {
            key.push(acc.finish(call)?);
        }
        Ok(key)
    }
}

impl Operator for StreamAggregateOp<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        while !self.done {
            let Some(row) = self.input.next(cx)? else {
                self.done = true;
                break;
            };
            let key: Row = self.group_by.iter().map(|e| e.eval(&row, cx)).collect::<Result<_>>()?;
            let same = self
                .current
                .as_ref()
                .is_some_and(|(k, _)| k.iter().zip(&key).all(|(a, b)| a.group_eq(b)));
            let finished = if same {
                None
            } else {
                let fresh = (key, self.aggs.iter().map(Accumulator::new).collect());
                self.current.replace(fresh)
            };
            let (_, accs) = self.current.as_mut().expect("a current group");
            for (acc, call) in accs.iter_mut().zip(self.aggs) {
                let args =
                    call.args.iter().map(|a| a.eval(&row, cx)).collect::<Result<Vec<_>>>()?;
                acc.add(call, args)?;
            }
            if let Some(group) = finished {
                return self.finish(group).map(Some);
            }
        }
        match self.current.take() {
            Some(group) => self.finish(group).map(Some),
            None => Ok(None),
        }
    }
}

/// Compares rows by sort keys, with PostgreSQL's NULL placement.
pub fn compare_rows(a: &[Value], b: &[Value], keys: &[SortKey]) -> Ordering {
    for k in keys {
        let (x, y) = (&a[k.column], &b[k.column]);
        let ord = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if k.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if k.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, false) => {
                let o = x.sort_cmp(y);
                if k.desc { o.reverse() } else { o }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

struct SortOp<'p> {
    input: Box<dyn Operator + 'p>,
    keys: &'p [SortKey],
    sorted: Option<std::vec::IntoIter<Row>>,
}

impl Operator for SortOp<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        if self.sorted.is_none() {
            let mut rows = Vec::new();
            while let Some(r) = self.input.next(cx)? {
                cx.charge(row_size(&r))?;
                rows.push(r);
            }
            rows.sort_by(|a, b| compare_rows(a, b, self.keys));
            self.sorted = Some(rows.into_iter());
        }
        Ok(self.sorted.as_mut().expect("sorted").next())
    }
}

/// A row held by a top-N sort, ordered by the sort keys and then by arrival:
/// the greatest is the row a stable sort would put last.
struct Ranked<'k> {
    row: Row,
    seq: u64,
    keys: &'k [SortKey],
}

impl Ord for Ranked<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_rows(&self.row, &other.row, self.keys).then(self.seq.cmp(&other.seq))
    }
}
impl PartialOrd for Ranked<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Ranked<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked<'_> {}

/// ORDER BY under a LIMIT: a max-heap of the best `limit + offset` rows so
/// far. A new row enters only if it ranks before the heap's greatest, which
/// then leaves, so the rows kept (and the memory charged) never exceed the
/// bound, and the result is the first `limit + offset` rows of a stable
/// sort.
struct TopNOp<'p> {
    input: Box<dyn Operator + 'p>,
    keys: &'p [SortKey],
    limit: &'p Expr,
    offset: &'p Option<Expr>,
    sorted: Option<std::vec::IntoIter<Row>>,
}

impl TopNOp<'_> {
    fn compute(&mut self, cx: &mut Cx<'_>) -> Result<Vec<Row>> {
        let limit = count_value(Some(self.limit), "LIMIT", cx)?;
        let offset = count_value(self.offset.as_ref(), "OFFSET", cx)?.unwrap_or(0);
        let keep = limit.map_or(u64::MAX, |l| l.saturating_add(offset));
        if keep == 0 {
            return Ok(Vec::new());
        }
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        let mut heap: std::collections::BinaryHeap<Ranked<'_>> = Default::default();
        let mut seq = 0;
        while let Some(row) = self.input.next(cx)? {
            let ranked = Ranked { row, seq, keys: self.keys };
            seq += 1;
            if heap.len() == keep {
                let worst = heap.peek().expect("keep > 0");
                if ranked >= *worst {
                    continue;
                }
                let worst = heap.pop().expect("non-empty");
                cx.release(row_size(&worst.row));
            }
            cx.charge(row_size(&ranked.row))?;
            heap.push(ranked);
        }
        Ok(heap.into_sorted_vec().into_iter().map(|r| r.row).collect())
    }
}

impl Operator for TopNOp<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        if self.sorted.is_none() {
            let rows = self.compute(cx)?;
            self.sorted = Some(rows.into_iter());
        }
        Ok(self.sorted.as_mut().expect("sorted").next())
    }
}

struct LimitOp<'p> {
    input: Box<dyn Operator + 'p>,
    limit: &'p Option<Expr>,
    offset: &'p Option<Expr>,
    bounds: Option<(Option<u64>, u64)>,
    seen: u64,
}

fn count_value(e: Option<&Expr>, what: &str, cx: &mut Cx<'_>) -> Result<Option<u64>> {
    let Some(e) = e else { return Ok(None) };
    match e.eval(&[], cx)? {
        Value::Null => Ok(None),
        Value::Int(n) if n >= 0 => Ok(Some(n as u64)),
        Value::Int(_) => Err(SqlError::new("2201W", format!("{what} must not be negative"))),
        other => Err(SqlError::internal(format!("{what} evaluated to {other:?}"))),
    }
}

impl Operator for LimitOp<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        if self.bounds.is_none() {
            let limit = count_value(self.limit.as_ref(), "LIMIT", cx)?;
            let offset = count_value(self.offset.as_ref(), "OFFSET", cx)?.unwrap_or(0);
            self.bounds = Some((limit, offset));
        }
        let (limit, offset) = self.bounds.expect("set");
        while self.seen < offset {
            if self.input.next(cx)?.is_none() {
                return Ok(None);
            }
            self.seen += 1;
        }
        if limit.is_some_and(|l| self.seen - offset >= l) {
            return Ok(None);
        }
        let row = self.input.next(cx)?;
        self.seen += u64::from(row.is_some());
        Ok(row)
    }
}

struct DistinctOp<'p> {
    input: Box<dyn Operator + 'p>,
    seen: HashMap<GroupKey, ()>,
}

impl Operator for DistinctOp<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        while let Some(row) = self.input.next(cx)? {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.seen.entry(GroupKey(row))
            {
                cx.charge(row_size(&slot.key().0))?;
                let row = slot.key().0.clone();
                slot.insert(());
                return Ok(Some(row));
            }
        }
        Ok(None)
    }
}

/// The materialized right side of a join.
struct Built {
    rows: Vec<Row>,
    matched: Vec<bool>,
    /// For a hash join: right rows by key.
    hash: Option<HashMap<GroupKey, Vec<usize>>>,
}

struct JoinOp<'p> {
    left: Box<dyn Operator + 'p>,
    right_node: &'p Node,
    kind: JoinKind,
    equi: &'p [(Expr, Expr)],
    on: Option<&'p Expr>,
    left_width: usize,
    right_width: usize,
    built: Option<Built>,
    pending: Vec<Row>,
    left_done: bool,
    tail: Option<usize>,
}

impl JoinOp<'_> {
    fn build_right(&mut self, cx: &mut Cx<'_>) -> Result<()> {
        let mut op = build(self.right_node);
        let mut rows = Vec::new();
        while let Some(r) = op.next(cx)? {
            cx.charge(row_size(&r))?;
            rows.push(r);
        }
        let hash = if self.equi.is_empty() {
            None
        } else {
            let mut map: HashMap<GroupKey, Vec<usize>> = HashMap::new();
            for (i, r) in rows.iter().enumerate() {
                let key: Row =
                    self.equi.iter().map(|(_, rk)| rk.eval(r, cx)).collect::<Result<_>>()?;
                if key.iter().any(Value::is_null) {
                    continue; // NULL never equals anything
                }
                map.entry(GroupKey(key)).or_default().push(i);
            }
            Some(map)
        };
        self.built = Some(Built { matched: vec![false; rows.len()], rows, hash });
        Ok(())
    }

    /// All output rows for one left row.
    fn probe(&mut self, left: Row, cx: &mut Cx<'_>) -> Result<()> {
        let built = self.built.as_mut().expect("built");
        let candidates: Vec<usize> = match &built.hash {
            Some(map) => {
                let key: Row =
                    self.equi.iter().map(|(lk, _)| lk.eval(&left, cx)).collect::<Result<_>>()?;
                if key.iter().any(Value::is_null) {
                    Vec::new()
                } else {
                    map.get(&GroupKey(key)).cloned().unwrap_or_default()
                }
            }
            None => (0..built.rows.len()).collect(),
        };
        let mut any = false;
        for i in candidates {
            let mut joined = left.clone();
            joined.extend(built.rows[i].iter().cloned());
            let keep = match self.on {
                Some(on) => truth(&on.eval(&joined, cx)?)? == Some(true),
                None => true,
            };
            if keep {
                any = true;
                built.matched[i] = true;
                self.pending.push(joined);
            }
        }
        if !any && matches!(self.kind, JoinKind::Left | JoinKind::Full) {
            let mut joined = left;
            joined.extend(std::iter::repeat_n(Value::Null, self.right_width));
            self.pending.push(joined);
        }
        Ok(())
    }
}

impl Operator for JoinOp<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        if self.built.is_none() {
            self.build_right(cx)?;
        }
        loop {
            cx.check_interrupt()?;
            if let Some(r) = self.pending.pop() {
                return Ok(Some(r));
            }
            if !self.left_done {
                match self.left.next(cx)? {
                    Some(l) => {
                        self.probe(l, cx)?;
                        self.pending.reverse(); // keep right-side order
                        continue;
                    }
                    None => self.left_done = true,
                }
            }
            // Right and full joins: right rows nobody matched.
            if !matches!(self.kind, JoinKind::Right | JoinKind::Full) {
                return Ok(None);
            }
            let built = self.built.as_ref().expect("built");
            let i = self.tail.get_or_insert(0);
            while *i < built.rows.len() && built.matched[*i] {
                *i += 1;
            }
            if *i >= built.rows.len() {
                return Ok(None);
            }
            let mut row: Row = std::iter::repeat_n(Value::Null, self.left_width).collect();
            row.extend(built.rows[*i].iter().cloned());
            *i += 1;
            return Ok(Some(row));
        }
    }
}

/// Where EXPLAIN ANALYZE records the inner lookups of an index join: its
/// node's address plus one, which is no node's address (nodes are aligned),
/// since the node's own address records the join's output rows.
pub fn inner_profile_id(node: &Node) -> usize {
    node as *const Node as usize + 1
}

/// Index nested-loop join: per left row, reads the right table's rows
/// through the lookup key (a primary-key point `get`, else a prefix scan
/// of the primary key or of a secondary index), streaming one left row's
/// matches at a time. Output order: left order, then key order per row.
struct IndexJoinOp<'p> {
    left: Box<dyn Operator + 'p>,
    table: &'p Table,
    index: u32,
    lookup: &'p [Expr],
    right_filter: Option<&'p Expr>,
    kind: JoinKind,
    equi: &'p [(Expr, Expr)],
    on: Option<&'p Expr>,
    right_width: usize,
    for_update: bool,
    decoder: RowDecoder,
    profile_id: usize,
    /// The left row being joined, its open lookup, and whether it matched.
    current: Option<(Row, ScanState, bool)>,
}

impl IndexJoinOp<'_> {
    /// Opens the lookup of `left`'s right rows. A key value that no right
    /// key can equal (NULL, `2.5` for an integer) finds nothing.
    fn open(&self, left: &[Value], cx: &mut Cx<'_>) -> Result<ScanState> {
        let types = index_types(self.table, self.index)?;
        let mut key = self.table.index_prefix(self.index);
        for (e, ty) in self.lookup.iter().zip(&types) {
            let Some(v) = exact_key_value(e.eval(left, cx)?, ty) else {
                return Ok(ScanState::Done);
            };
            encode_key(&mut key, &v, ty, false);
        }
        let range = KeyRange::prefix(&key);
        Ok(if self.index != PRIMARY_INDEX {
            ScanState::Index(cx.txn.scan(range, false)?)
        } else if self.lookup.len() == self.table.primary_key.len() {
            ScanState::Fetched(fetch(&self.decoder, self.for_update, &key, cx)?)
        } else {
            ScanState::Rows(cx.txn.scan(range, false)?)
        })
    }

    /// Whether the pair passes the right filter, the join keys and ON.
    fn matches(&self, left: &[Value], right: &[Value], cx: &mut Cx<'_>) -> Result<bool> {
        if let Some(f) = self.right_filter
            && truth(&f.eval(right, cx)?)? != Some(true)
        {
            return Ok(false);
        }
        for (lk, rk) in self.equi {
            let (l, r) = (lk.eval(left, cx)?, rk.eval(right, cx)?);
            if l.is_null() || !l.group_eq(&r) {
                return Ok(false);
            }
        }
        match self.on {
            Some(on) => {
                let joined: Row = left.iter().chain(right).cloned().collect();
                Ok(truth(&on.eval(&joined, cx)?)? == Some(true))
            }
            None => Ok(true),
        }
    }

    /// Runs `step`, recording its time (and a row, if it yields one) as the
    /// inner lookups' profile.
    fn profiled<T>(
        &mut self,
        cx: &mut Cx<'_>,
        step: impl FnOnce(&mut Self, &mut Cx<'_>) -> Result<T>,
        is_row: impl Fn(&T) -> bool,
    ) -> Result<T> {
        let Some(profile) = cx.profile.clone() else { return step(self, cx) };
        let started = Instant::now();
        let out = step(self, cx)?;
        let mut p = profile.borrow_mut();
        let entry = p.nodes.entry(self.profile_id).or_default();
        entry.0 += u64::from(is_row(&out));
        entry.1 += started.elapsed().as_nanos();
        Ok(out)
    }
}

impl Operator for IndexJoinOp<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        loop {
            cx.check_interrupt()?;
            if self.current.is_none() {
                let Some(left) = self.left.next(cx)? else { return Ok(None) };
                let state = self.profiled(cx, |op, cx| op.open(&left, cx), |_| false)?;
                self.current = Some((left, state, false));
            }
            let right = self.profiled(
                cx,
                |op, cx| {
                    let (_, state, _) = op.current.as_mut().expect("a left row");
                    scan_next(op.table, &op.decoder, op.for_update, state, cx)
                },
                Option::is_some,
            )?;
            let (left, _, matched) = self.current.as_ref().expect("a left row");
            match right {
                Some(right) => {
                    if self.matches(left, &right, cx)? {
                        let mut joined = left.clone();
                        joined.extend(right);
                        self.current.as_mut().expect("a left row").2 = true;
                        return Ok(Some(joined));
                    }
                }
                None => {
                    let matched = *matched;
                    let (mut left, _, _) = self.current.take().expect("a left row");
                    if !matched && self.kind == JoinKind::Left {
                        left.extend(std::iter::repeat_n(Value::Null, self.right_width));
                        return Ok(Some(left));
                    }
                }
            }
        }
    }
}

struct SetOpOp<'p> {
    op: SetOpKind,
    all: bool,
    left: Box<dyn Operator + 'p>,
    right_node: &'p Node,
    /// UNION ALL streams the right side after the left.
    right: Option<Box<dyn Operator + 'p>>,
    /// INTERSECT and EXCEPT: how often each right row occurs.
    counts: Option<HashMap<GroupKey, usize>>,
    /// Rows already emitted (for the distinct forms).
    emitted: HashMap<GroupKey, ()>,
}

impl Operator for SetOpOp<'_> {
    fn next(&mut self, cx: &mut Cx<'_>) -> Result<Option<Row>> {
        if self.op != SetOpKind::Union && self.counts.is_none() {
            let mut counts = HashMap::new();
            let mut op = build(self.right_node);
            while let Some(r) = op.next(cx)? {
                cx.charge(row_size(&r))?;
                *counts.entry(GroupKey(r)).or_insert(0) += 1;
            }
            self.counts = Some(counts);
        }
        loop {
            let row = match self.left.next(cx)? {
                Some(r) => r,
                None if self.op == SetOpKind::Union => {
                    let right = self.right.get_or_insert_with(|| build(self.right_node));
                    match right.next(cx)? {
                        Some(r) => r,
                        None => return Ok(None),
                    }
                }
                None => return Ok(None),
            };
            let key = GroupKey(row);
            let keep = match self.op {
                SetOpKind::Union => true,
                SetOpKind::Intersect => {
                    let c = self.counts.as_mut().expect("counted").get_mut(&key);
                    match c {
                        Some(n) if *n > 0 => {
                            if self.all {
                                *n -= 1;
                            }
                            true
                        }
                        _ => false,
                    }
                }
                SetOpKind::Except => {
                    let c = self.counts.as_mut().expect("counted").get_mut(&key);
                    match c {
                        Some(n) if *n > 0 => {
                            if self.all {
                                *n -= 1;
                                false
                            } else {
                                false
                            }
                        }
                        _ => true,
                    }
                }
            };
            if !keep {
                continue;
            }
            if !self.all {
                if self.emitted.contains_key(&key) {
                    continue;
                }
                cx.charge(row_size(&key.0))?;
                self.emitted.insert(key.clone(), ());
            }
            return Ok(Some(key.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Database, Session, SqlError, Value, sqlstate};

    fn plan(session: &mut Session, sql: &str) -> Vec<String> {
        let result = session.execute(sql, &[]).expect("runs").pop().expect("a result");
        result
            .rows
            .into_iter()
            .map(|r| match &r[0] {
                Value::Text(line) => line.clone(),
                other => panic!("plan line {other:?}"),
            })
            .collect()
    }

    /// The `actual rows` of the one plan line containing `node`.
    fn actual_rows(plan: &[String], node: &str) -> u64 {
        let lines: Vec<&String> = plan.iter().filter(|l| l.contains(node)).collect();
        assert_eq!(lines.len(), 1, "one {node:?} line in {plan:#?}");
        let rest = lines[0].split("actual rows=").nth(1).expect("analyzed");
        rest.split(' ').next().expect("a count").parse().expect("a number")
    }

    fn loaded(rows: i64) -> (Database, Session) {
        let db = Database::open_temporary().expect("open");
        let mut session = db.session();
        session.execute("CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)", &[]).expect("create");
        let values: Vec<String> = (0..rows).map(|k| format!("({k}, 'v{}')", k % 97)).collect();
        session
            .execute(&format!("INSERT INTO kv VALUES {}", values.join(", ")), &[])
            .expect("load");
        (db, session)
    }

    #[test]
    fn limit_over_an_ordered_key_scan_reads_only_the_rows_it_returns() {
        let (_db, mut session) = loaded(1000);
        let p = plan(
            &mut session,
            "EXPLAIN ANALYZE SELECT * FROM kv WHERE k >= 100 ORDER BY k LIMIT 5",
        );
        assert!(!p.iter().any(|l| l.contains("Sort")), "{p:#?}");
        assert_eq!(actual_rows(&p, "Index Scan using kv_pkey"), 5);
        let p = plan(&mut session, "EXPLAIN ANALYZE SELECT k FROM kv ORDER BY k DESC LIMIT 3");
        assert_eq!(actual_rows(&p, "Index Scan Backward using kv_pkey"), 3);
        let rows = session
            .execute("SELECT k FROM kv ORDER BY k DESC LIMIT 3", &[])
            .expect("runs")
            .pop()
            .expect("a result")
            .rows;
        assert_eq!(rows, vec![vec![Value::Int(999)], vec![Value::Int(998)], vec![Value::Int(997)]]);
        // The unordered form read all rows before: a top-N sort still must.
        let p = plan(&mut session, "EXPLAIN ANALYZE SELECT * FROM kv ORDER BY v, k LIMIT 3");
        assert_eq!(actual_rows(&p, "Seq Scan on kv"), 1000);
        assert_eq!(actual_rows(&p, "Top-N Sort"), 3);
    }

    #[test]
    fn top_n_sort_holds_only_limit_plus_offset_rows() {
        let (_db, mut session) = loaded(5000);
        // Enough for a few hundred rows, not for 5000.
        session.execute("SET work_mem = 40000", &[]).expect("set");
        let err: SqlError = session
            .execute("SELECT * FROM kv ORDER BY v, k", &[])
            .expect_err("a full sort exceeds work_mem");
        assert_eq!(err.code, sqlstate::OUT_OF_MEMORY);
        let rows = session
            .execute("SELECT k FROM kv ORDER BY v DESC, k LIMIT 3 OFFSET 2", &[])
            .expect("a top-N sort fits")
            .pop()
            .expect("a result")
            .rows;
        // v = 'v96' for k = 96, 193, 290, 387, ...; 'v96' > 'v95' > ... > 'v10' > 'v1'.
        assert_eq!(rows, vec![vec![Value::Int(290)], vec![Value::Int(387)], vec![Value::Int(484)]]);
    }

    #[test]
    fn index_join_looks_up_one_inner_row_per_outer_row() {
        let (_db, mut session) = loaded(1000);
        session.execute("CREATE TABLE o (id INT PRIMARY KEY, k INT)", &[]).expect("create");
        session
            .execute("INSERT INTO o VALUES (1, 5), (2, 5), (3, NULL), (4, 5000), (5, 7)", &[])
            .expect("load");
        let p = plan(
            &mut session,
            "EXPLAIN ANALYZE SELECT o.id, kv.v FROM o LEFT JOIN kv ON kv.k = o.k WHERE o.id < 5",
        );
        assert_eq!(actual_rows(&p, "Nested Loop Left Join (index lookup on kv_pkey)"), 4);
        // Two lookups find a row; NULL and 5000 find none; kv is not read whole.
        assert_eq!(actual_rows(&p, "Index Scan using kv_pkey on kv (lookup per outer row)"), 2);
    }
}
