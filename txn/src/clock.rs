//! Hybrid logical clocks.
//!
//! A timestamp packs physical milliseconds since the Unix epoch in its high 48
//! bits and a logical counter in its low 16 bits, so timestamps compare as
//! integers, stay close to wall-clock time, and still grow when the wall clock
//! stalls or steps back (Kulkarni et al., "Logical Physical Clocks", 2014).
//!
//! Invariants:
//! - [`Hlc::now`] never returns the same or a smaller value twice, even across
//!   restarts: a high-water mark a few seconds ahead of the clock is persisted
//!   (through [`HighWaterStore`]) before any timestamp beyond the previous mark
//!   is handed out, and a restarted clock starts above it.
//! - [`Hlc::update`] moves the clock past a timestamp received from elsewhere
//!   (causality), unless that timestamp is further ahead of the local physical
//!   clock than the configured maximum offset, which is rejected.
//!
//! Safety never depends on physical clocks being right: they only keep
//! timestamps meaningful to people and bound how far peers can push the clock.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use strata_lsm::Timestamp;

/// How close to the persisted high-water mark [`Hlc::reserve_headroom`]
/// renews it.
const HEADROOM_MS: u64 = 1_000;

/// Bits of a timestamp holding the logical counter.
pub const LOGICAL_BITS: u32 = 16;

/// The timestamp of physical millisecond `ms` with logical counter 0.
pub fn from_millis(ms: u64) -> Timestamp {
    ms << LOGICAL_BITS
}

/// The physical milliseconds of a timestamp.
pub fn to_millis(ts: Timestamp) -> u64 {
    ts >> LOGICAL_BITS
}

/// A source of physical time, so tests and the simulator can drive it.
pub trait PhysicalClock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch. May stall or step backwards.
    fn now_millis(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl PhysicalClock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    pub fn new(millis: u64) -> ManualClock {
        ManualClock { millis: AtomicU64::new(millis) }
    }

    pub fn set(&self, millis: u64) {
        self.millis.store(millis, Ordering::SeqCst);
    }

    pub fn advance(&self, millis: u64) {
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }
}

impl PhysicalClock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.millis.load(Ordering::SeqCst)
    }
}

/// Durable storage for the clock's high-water mark.
pub trait HighWaterStore: Send + Sync + std::fmt::Debug {
    /// The last stored mark, 0 if none.
    fn load(&self) -> Result<Timestamp>;
    /// Durably stores `mark`; returns only once it would survive a crash.
    fn store(&self, mark: Timestamp) -> Result<()>;
}

/// Keeps the high-water mark in memory only (tests, simulation).
#[derive(Debug, Default)]
pub struct MemoryHighWater {
    mark: AtomicU64,
}

impl HighWaterStore for MemoryHighWater {
    fn load(&self) -> Result<Timestamp> {
        Ok(self.mark.load(Ordering::SeqCst))
    }
    fn store(&self, mark: Timestamp) -> Result<()> {
        self.mark.store(mark, Ordering::SeqCst);
        Ok(())
    }
}

/// Keeps the high-water mark in a small checksummed file, replaced atomically.
#[derive(Debug)]
pub struct FileHighWater {
    path: PathBuf,
}

impl FileHighWater {
    pub fn new(dir: &Path) -> FileHighWater {
        FileHighWater { path: dir.join("HLC") }
    }
}

impl HighWaterStore for FileHighWater {
    fn load(&self) -> Result<Timestamp> {
        let data = match std::fs::read(&self.path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(&self.path, e)),
        };
        let parsed = (data.len() == 12)
            .then(|| {
                let mark = u64::from_le_bytes(data[..8].try_into().ok()?);
                let crc = u32::from_le_bytes(data[8..].try_into().ok()?);
                (crc32c::crc32c(&data[..8]) == crc).then_some(mark)
            })
            .flatten();
        parsed.ok_or_else(|| {
            Error::Corruption(format!("{}: damaged clock high-water mark", self.path.display()))
        })
    }

    fn store(&self, mark: Timestamp) -> Result<()> {
        let mut data = mark.to_le_bytes().to_vec();
        data.extend_from_slice(&crc32c::crc32c(&data).to_le_bytes());
        let tmp = self.path.with_extension("tmp");
        let io = |e| Error::io(&tmp, e);
        let file = std::fs::File::create(&tmp).map_err(io)?;
        std::io::Write::write_all(&mut &file, &data).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
    }
}

/// A hybrid logical clock.
#[derive(Debug)]
pub struct Hlc {
    physical: Box<dyn PhysicalClock>,
    last: AtomicU64,
    /// Timestamps below this are safe to hand out; raising it persists it.
    persisted: AtomicU64,
    store: Box<dyn HighWaterStore>,
    persist_lock: Mutex<()>,
    max_offset_ms: u64,
    persist_ahead_ms: u64,
}

impl Hlc {
    /// A clock starting above both the stored high-water mark and `floor`
    /// (for example the newest timestamp already in the database).
    pub fn new(
        physical: Box<dyn PhysicalClock>,
        store: Box<dyn HighWaterStore>,
        floor: Timestamp,
        max_offset_ms: u64,
    ) -> Result<Hlc> {
        let start = store.load()?.max(floor);
        Ok(Hlc {
            physical,
            last: AtomicU64::new(start),
            persisted: AtomicU64::new(start),
            store,
            persist_lock: Mutex::new(()),
            max_offset_ms,
            persist_ahead_ms: 5_000,
        })
    }

    /// A clock on the system wall clock with an in-memory high-water mark.
    pub fn system_volatile(max_offset_ms: u64) -> Hlc {
        Hlc::new(Box::new(SystemClock), Box::<MemoryHighWater>::default(), 0, max_offset_ms)
            .expect("memory store cannot fail")
    }

    /// A new timestamp, larger than every timestamp this clock returned or
    /// observed before.
    pub fn now(&self) -> Result<Timestamp> {
        let physical = from_millis(self.physical.now_millis());
        let mut last = self.last.load(Ordering::SeqCst);
        loop {
            let next = physical.max(last + 1);
            match self.last.compare_exchange_weak(last, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    self.ensure_persisted(next)?;
                    return Ok(next);
                }
                Err(actual) => last = actual,
            }
        }
    }

    /// The physical clock's reading, in milliseconds.
    pub fn physical_millis(&self) -> u64 {
        self.physical.now_millis()
    }

    /// The newest timestamp handed out or observed (without advancing).
    pub fn peek(&self) -> Timestamp {
        self.last.load(Ordering::SeqCst)
    }

    /// Moves the clock past `remote`, received from another node or client.
    pub fn update(&self, remote: Timestamp) -> Result<()> {
        let local_ms = self.physical.now_millis();
        let remote_ms = to_millis(remote);
        if remote_ms > local_ms + self.max_offset_ms {
            return Err(Error::ClockOffset {
                remote_ms,
                local_ms,
                max_offset_ms: self.max_offset_ms,
            });
        }
        self.last.fetch_max(remote, Ordering::SeqCst);
        self.ensure_persisted(remote)
    }

    /// Persists a new high-water mark now if the clock is within a second of
    /// the current one. Callers invoke it before taking locks on their hot
    /// path, so that [`Hlc::now`] (which may run under locks) practically
    /// never has to fsync.
    pub fn reserve_headroom(&self) -> Result<()> {
        let soon = from_millis(self.physical.now_millis() + HEADROOM_MS).max(self.peek() + 1);
        self.ensure_persisted(soon)
    }

    /// Persists a new high-water mark before `ts` may be handed out.
    fn ensure_persisted(&self, ts: Timestamp) -> Result<()> {
        if ts < self.persisted.load(Ordering::SeqCst) {
            return Ok(());
        }
        let _guard = self.persist_lock.lock().unwrap_or_else(|p| p.into_inner());
        if ts < self.persisted.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mark = ts.max(from_millis(self.physical.now_millis() + self.persist_ahead_ms));
        self.store.store(mark)?;
        self.persisted.store(mark, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Debug)]
    struct Shared(Arc<ManualClock>);
    impl PhysicalClock for Shared {
        fn now_millis(&self) -> u64 {
            self.0.now_millis()
        }
    }

    fn clock_at(ms: u64) -> (Arc<ManualClock>, Hlc) {
        let physical = Arc::new(ManualClock::new(ms));
        let hlc =
            Hlc::new(Box::new(Shared(physical.clone())), Box::<MemoryHighWater>::default(), 0, 500)
                .unwrap();
        (physical, hlc)
    }

    #[test]
    fn now_is_strictly_monotonic_even_when_time_stalls_or_steps_back() {
        let (physical, hlc) = clock_at(1_000);
        let a = hlc.now().unwrap();
        let b = hlc.now().unwrap();
        assert_eq!((to_millis(a), a & 0xffff), (1_000, 0));
        assert_eq!(b, a + 1, "a stalled clock counts logically");
        physical.set(900);
        let c = hlc.now().unwrap();
        assert!(c > b, "stepping back never moves the HLC back");
        physical.set(2_000);
        assert_eq!(hlc.now().unwrap(), from_millis(2_000), "physical time takes over again");
    }

    #[test]
    fn concurrent_callers_never_share_a_timestamp() {
        let hlc = Arc::new(clock_at(5).1);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let hlc = hlc.clone();
                std::thread::spawn(move || {
                    (0..5000).map(|_| hlc.now().unwrap()).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn update_keeps_causality_and_rejects_excessive_offset() {
        let (_, hlc) = clock_at(1_000);
        let remote = from_millis(1_400) + 7;
        hlc.update(remote).unwrap();
        assert!(hlc.now().unwrap() > remote);
        let too_far = from_millis(1_000 + 501);
        match hlc.update(too_far) {
            Err(Error::ClockOffset { remote_ms: 1_501, local_ms: 1_000, max_offset_ms: 500 }) => {}
            other => panic!("expected a clock offset error, got {other:?}"),
        }
        assert!(hlc.peek() < too_far, "a rejected timestamp does not move the clock");
    }

    #[test]
    fn restart_starts_above_everything_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let physical = Arc::new(ManualClock::new(70_000));
        let mk = |p: &Arc<ManualClock>| {
            Hlc::new(Box::new(Shared(p.clone())), Box::new(FileHighWater::new(dir.path())), 0, 500)
                .unwrap()
        };
        let before = {
            let hlc = mk(&physical);
            (0..100).map(|_| hlc.now().unwrap()).max().unwrap()
        };
        // The machine restarts with its wall clock set back by a minute.
        physical.set(10_000);
        let hlc = mk(&physical);
        assert!(hlc.now().unwrap() > before);
    }

    #[derive(Debug, Default)]
    struct CountingStore {
        stores: AtomicU64,
        mark: AtomicU64,
    }
    impl HighWaterStore for Arc<CountingStore> {
        fn load(&self) -> Result<Timestamp> {
            Ok(self.mark.load(Ordering::SeqCst))
        }
        fn store(&self, mark: Timestamp) -> Result<()> {
            self.stores.fetch_add(1, Ordering::SeqCst);
            self.mark.store(mark, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn reserving_headroom_keeps_now_from_persisting() {
        let physical = Arc::new(ManualClock::new(50_000));
        let store = Arc::new(CountingStore::default());
        let hlc =
            Hlc::new(Box::new(Shared(physical.clone())), Box::new(store.clone()), 0, 500).unwrap();
        hlc.now().unwrap();
        assert_eq!(store.stores.load(Ordering::SeqCst), 1, "the first timestamp persists a mark");
        // Walk the clock forward, reserving headroom before each timestamp as
        // the commit path does: now() never has to persist by itself.
        for _ in 0..100 {
            physical.advance(300);
            hlc.reserve_headroom().unwrap();
            let before = store.stores.load(Ordering::SeqCst);
            let ts = hlc.now().unwrap();
            assert_eq!(store.stores.load(Ordering::SeqCst), before, "now() persisted at {ts}");
            assert!(ts < store.mark.load(Ordering::SeqCst));
        }
        assert!(
            store.stores.load(Ordering::SeqCst) < 20,
            "renewed every few seconds, not every call"
        );
    }

    #[test]
    fn damaged_high_water_mark_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileHighWater::new(dir.path());
        store.store(12345).unwrap();
        assert_eq!(store.load().unwrap(), 12345);
        let path = dir.path().join("HLC");
        let mut data = std::fs::read(&path).unwrap();
        data[0] ^= 1;
        std::fs::write(&path, data).unwrap();
        assert!(matches!(store.load(), Err(Error::Corruption(_))));
    }
}
