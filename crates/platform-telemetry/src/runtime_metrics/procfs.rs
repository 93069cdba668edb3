//! Bounded reads and parsers of `/proc/self` (Linux).

use std::fs::File;
use std::io::Read as _;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most bytes read from one `/proc` file: `stat` is a few hundred bytes, `auxv` a few
/// hundred more; anything longer is not what we expect and is cut.
const MAX_FILE_BYTES: u64 = 4096;

/// File descriptors counted at most: the directory walk stops there.
pub(super) const MAX_FILE_DESCRIPTORS: usize = 100_000;

/// `AT_PAGESZ` and `AT_CLKTCK` in the auxiliary vector (`<elf.h>`).
const AT_PAGESZ: usize = 6;
const AT_CLKTCK: usize = 17;

/// The page size and clock tick the kernel gave the process, from `/proc/self/auxv` (the values
/// `sysconf` returns), or Linux's usual 4096 bytes and 100 Hz when it cannot be read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Sysconf {
    pub(super) page_size: u64,
    pub(super) ticks_per_second: f64,
}

impl Sysconf {
    const DEFAULT: Sysconf = Sysconf {
        page_size: 4096,
        ticks_per_second: 100.0,
    };

    pub(super) fn read() -> Self {
        read_bounded(Path::new("/proc/self/auxv"))
            .map(|auxv| Self::from_auxv(&auxv))
            .unwrap_or(Self::DEFAULT)
    }

    /// Parses the auxiliary vector: native-endian `(type, value)` word pairs up to `AT_NULL`.
    /// Zero or missing values keep the defaults.
    pub(super) fn from_auxv(auxv: &[u8]) -> Self {
        const WORD: usize = std::mem::size_of::<usize>();
        let mut sys = Self::DEFAULT;
        for pair in auxv.chunks_exact(2 * WORD) {
            let (key, value) = pair.split_at(WORD);
            let word = |bytes: &[u8]| {
                let mut b = [0u8; WORD];
                b.copy_from_slice(bytes);
                usize::from_ne_bytes(b)
            };
            match (word(key), word(value)) {
                (0, _) => break,
                (_, 0) => {}
                (AT_PAGESZ, v) => sys.page_size = v as u64,
                (AT_CLKTCK, v) => sys.ticks_per_second = v as f64,
                _ => {}
            }
        }
        sys
    }
}

/// When this process started, as seconds since the Unix epoch: `/proc/self/stat` field 22
/// (clock ticks after boot) plus `btime` of `/proc/stat` (boot, in Unix seconds). `None` when
/// either cannot be read.
pub(crate) fn process_start_unix_seconds() -> Option<f64> {
    let stat = String::from_utf8(read_bounded(Path::new("/proc/self/stat"))?).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 (state) on: field 22 is at index 19.
    let start_ticks: u64 = after_comm
        .split_ascii_whitespace()
        .nth(22 - 3)?
        .parse()
        .ok()?;
    let boot = boot_unix_seconds(&String::from_utf8_lossy(&read_bounded_up_to(
        Path::new("/proc/stat"),
        64 * 1024,
    )?))?;
    Some(boot as f64 + start_ticks as f64 / Sysconf::read().ticks_per_second)
}

/// `btime` in a `/proc/stat` text.
fn boot_unix_seconds(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// What the metrics need from `/proc/self/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stat {
    /// Fields 14 and 15: CPU time in user and kernel mode, in clock ticks.
    pub(super) user_ticks: u64,
    pub(super) system_ticks: u64,
    /// Field 20.
    pub(super) threads: u64,
    /// Field 23: virtual memory size in bytes.
    pub(super) virtual_bytes: u64,
    /// Field 24: resident set size in pages.
    pub(super) resident_pages: u64,
}

impl Stat {
    /// `(user, system)` CPU seconds.
    pub(super) fn cpu_seconds(&self, sys: Sysconf) -> (f64, f64) {
        (
            self.user_ticks as f64 / sys.ticks_per_second,
            self.system_ticks as f64 / sys.ticks_per_second,
        )
    }

    pub(super) fn resident_bytes(&self, sys: Sysconf) -> u64 {
        self.resident_pages.saturating_mul(sys.page_size)
    }

    /// Parses `/proc/[pid]/stat` (proc(5)): `pid (comm) state ppid …`. The command name can
    /// hold spaces and parentheses, so the fields are counted from the last `)`. `None` when
    /// a field is missing or not a number.
    pub(super) fn parse(text: &str) -> Option<Self> {
        let after_comm = &text[text.rfind(')')? + 1..];
        // Fields from 3 (state) on: field N is at index N - 3.
        let mut fields = after_comm.split_ascii_whitespace();
        let number = |field: Option<&str>| field?.parse::<u64>().ok();
        let user_ticks = number(fields.nth(14 - 3))?;
        let system_ticks = number(fields.next())?;
        let threads = number(fields.nth(20 - 16))?;
        let virtual_bytes = number(fields.nth(23 - 21))?;
        // rss is signed in the kernel's format; a negative one is no memory.
        let resident_pages = fields.next()?.parse::<i64>().ok()?.max(0).unsigned_abs();
        Some(Stat {
            user_ticks,
            system_ticks,
            threads,
            virtual_bytes,
            resident_pages,
        })
    }
}

/// One `/proc/self/stat` read shared by the instruments that need it: the callbacks of one
/// collection run back to back, so the first reads the file and the others reuse what it read
/// for as long as it is [`SharedStat::FRESH`]. A failed read is not kept.
#[derive(Debug)]
pub(super) struct SharedStat {
    fresh: Duration,
    last: Mutex<Option<(Instant, Stat)>>,
}

impl SharedStat {
    /// How long a read serves: far below any scrape or export interval.
    pub(super) const FRESH: Duration = Duration::from_millis(100);

    pub(super) fn new(fresh: Duration) -> Self {
        Self {
            fresh,
            last: Mutex::new(None),
        }
    }

    pub(super) fn get(&self) -> Option<Stat> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, stat)) = *last
            && at.elapsed() < self.fresh
        {
            return Some(stat);
        }
        let stat = stat()?;
        *last = Some((Instant::now(), stat));
        Some(stat)
    }
}

/// `/proc/self/stat`, read and parsed; `None` if either fails.
pub(super) fn stat() -> Option<Stat> {
    let bytes = read_bounded(Path::new("/proc/self/stat"))?;
    Stat::parse(std::str::from_utf8(&bytes).ok()?)
}

/// The open file descriptors, up to [`MAX_FILE_DESCRIPTORS`]; `None` if `/proc/self/fd` cannot
/// be read. Linux 6.2 and later give the count as the directory's size (no walk, whatever the
/// count); older kernels give 0, and the directory is walked instead, bounded.
pub(super) fn open_file_descriptors() -> Option<u64> {
    let size = std::fs::metadata("/proc/self/fd").ok()?.len();
    if size > 0 {
        return Some(size.min(MAX_FILE_DESCRIPTORS as u64));
    }
    count_file_descriptors()
}

/// The entries of `/proc/self/fd`, less the one the walk itself opens, up to
/// [`MAX_FILE_DESCRIPTORS`].
pub(super) fn count_file_descriptors() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    let seen = entries
        .take(MAX_FILE_DESCRIPTORS + 1)
        .filter(Result::is_ok)
        .count();
    Some(seen.saturating_sub(1) as u64)
}

/// Up to [`MAX_FILE_BYTES`] of a file.
fn read_bounded(path: &Path) -> Option<Vec<u8>> {
    read_bounded_up_to(path, MAX_FILE_BYTES)
}

/// Reads at most `max` bytes of `path`.
fn read_bounded_up_to(path: &Path, max: u64) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(512);
    File::open(path)
        .ok()?
        .take(max)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_boot_time_is_read_from_proc_stat_and_this_process_started_after_it() {
        assert_eq!(
            boot_unix_seconds("cpu  1 2 3\nintr 5 6\nbtime 1764777600\nprocesses 9\n"),
            Some(1_764_777_600)
        );
        assert_eq!(boot_unix_seconds("cpu 1\n"), None);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let started = process_start_unix_seconds().unwrap_or_default();
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "started {started}, now {now}"
        );
    }

    /// A real line (a process named `my (odd) name`), fields 14, 15, 20, 23, 24 set apart.
    const STAT: &str = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1200 0 3 0 \
        250 75 0 0 20 0 7 0 123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 4096 \
        17920 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        assert_eq!(
            Stat::parse(STAT),
            Some(Stat {
                user_ticks: 250,
                system_ticks: 75,
                threads: 7,
                virtual_bytes: 987_654_321,
                resident_pages: 2048,
            })
        );
        let sys = Sysconf {
            page_size: 4096,
            ticks_per_second: 100.0,
        };
        let stat = Stat::parse(STAT).unwrap();
        assert_eq!(stat.cpu_seconds(sys), (2.5, 0.75));
        assert_eq!(stat.resident_bytes(sys), 2048 * 4096);
    }

    #[test]
    fn a_short_or_garbled_stat_is_no_observation() {
        assert_eq!(Stat::parse(""), None);
        assert_eq!(Stat::parse("1 (x) S 1 2 3"), None);
        assert_eq!(Stat::parse(&STAT.replace(" 250 ", " x ")), None);
        assert_eq!(Stat::parse(&STAT.replace(')', " ")), None);
    }

    #[test]
    fn this_process_has_a_stat_threads_and_file_descriptors() {
        let stat = stat().expect("/proc/self/stat is readable");
        assert!(stat.threads >= 1);
        assert!(stat.virtual_bytes > 0 && stat.resident_pages > 0);
        // stdin, stdout and stderr at least.
        assert!(open_file_descriptors().is_some_and(|n| n >= 3));
        assert!(count_file_descriptors().is_some_and(|n| n >= 3));
        let sys = Sysconf::read();
        assert!(sys.page_size >= 4096 && sys.page_size.is_power_of_two());
        assert!(sys.ticks_per_second > 0.0);
    }

    /// Burns CPU on this thread until `/proc/self/stat` shows more of it (10 ms ticks).
    fn burn_a_tick() {
        let before = stat().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        while stat().unwrap().user_ticks + stat().unwrap().system_ticks
            == before.user_ticks + before.system_ticks
        {
            assert!(Instant::now() < deadline, "no CPU tick in 10 s of work");
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
    }

    #[test]
    fn a_shared_read_serves_while_fresh_and_is_read_again_after() {
        let ticks = |s: Stat| s.user_ticks + s.system_ticks;
        let kept = SharedStat::new(Duration::from_secs(3600));
        let first = kept.get().unwrap();
        burn_a_tick();
        assert_eq!(kept.get(), Some(first), "a fresh read is reused");
        let reread = SharedStat::new(Duration::ZERO);
        let first = reread.get().unwrap();
        burn_a_tick();
        assert!(
            ticks(reread.get().unwrap()) > ticks(first),
            "a stale read is replaced"
        );
    }

    #[test]
    fn the_walk_and_the_directory_size_count_the_same_descriptors() {
        // Other tests of this binary open and close files meanwhile: hold 50 more open, so a
        // count that missed them (or counted the walk's own descriptor twice) would show.
        let files: Vec<File> = (0..50).map(|_| File::open("/dev/null").unwrap()).collect();
        let (walked, counted) = (count_file_descriptors(), open_file_descriptors());
        let (walked, counted) = (walked.unwrap(), counted.unwrap());
        assert!(
            walked >= 53 && counted >= 53,
            "walked {walked}, counted {counted}"
        );
        assert!(
            walked.abs_diff(counted) < 10,
            "walked {walked}, counted {counted}"
        );
        drop(files);
    }

    fn auxv(pairs: &[(usize, usize)]) -> Vec<u8> {
        pairs
            .iter()
            .flat_map(|(k, v)| [k.to_ne_bytes(), v.to_ne_bytes()])
            .flatten()
            .collect()
    }

    #[test]
    fn auxv_gives_page_size_and_clock_ticks_and_stops_at_at_null() {
        let sys = Sysconf::from_auxv(&auxv(&[(3, 99), (AT_PAGESZ, 16384), (AT_CLKTCK, 250)]));
        assert_eq!(sys.page_size, 16384);
        assert_eq!(sys.ticks_per_second, 250.0);
        let after_null = Sysconf::from_auxv(&auxv(&[(0, 0), (AT_PAGESZ, 16384)]));
        assert_eq!(after_null, Sysconf::DEFAULT);
        assert_eq!(
            Sysconf::from_auxv(&auxv(&[(AT_CLKTCK, 0)])),
            Sysconf::DEFAULT
        );
    }

    proptest! {
        #[test]
        fn any_stat_text_parses_or_is_none_without_panicking(text in ".{0,600}") {
            let _ = Stat::parse(&text);
        }

        #[test]
        fn any_stat_with_the_right_fields_parses_them(
            comm in "[ -~]{0,16}",
            user in any::<u64>(),
            system in any::<u64>(),
            threads in any::<u64>(),
            vsize in any::<u64>(),
            rss in any::<i64>(),
        ) {
            let text = format!(
                "1 ({comm}) R 0 0 0 0 0 0 0 0 0 0 {user} {system} 0 0 0 0 {threads} 0 0 \
                 {vsize} {rss} 0 0\n"
            );
            let stat = Stat::parse(&text);
            prop_assert_eq!(stat, Some(Stat {
                user_ticks: user,
                system_ticks: system,
                threads,
                virtual_bytes: vsize,
                resident_pages: rss.max(0).unsigned_abs(),
            }));
        }

        #[test]
        fn any_auxv_bytes_give_positive_settings(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let sys = Sysconf::from_auxv(&bytes);
            prop_assert!(sys.page_size > 0 && sys.ticks_per_second > 0.0);
        }
    }
}
