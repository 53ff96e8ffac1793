//! Memory and swap, read from the collector's `sysinfo::System` (refreshed with
//! [`refresh_kind`] first). "Used" is total minus available, as `free` shows it.

use smon_proto::Memory;
use sysinfo::{MemoryRefreshKind, System};

/// What a sample refreshes of memory: RAM and swap.
pub fn refresh_kind() -> MemoryRefreshKind {
    MemoryRefreshKind::nothing().with_ram().with_swap()
}

/// The memory reading of a refreshed `sys`.
pub fn read(sys: &System) -> Memory {
    let total = sys.total_memory();
    let avail = sys.available_memory();
    let used = total.saturating_sub(avail);
    Memory {
        total_bytes: total,
        used_bytes: used,
        available_bytes: avail,
        used_percent: percent(used, total),
        swap_total_bytes: sys.total_swap(),
        swap_used_bytes: sys.used_swap(),
        swap_used_percent: percent(sys.used_swap(), sys.total_swap()),
    }
}

/// `part` as a percentage of `whole` (0 when `whole` is 0).
pub fn percent(part: u64, whole: u64) -> f32 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 100.0 / whole as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_of_nothing_is_zero() {
        assert_eq!(percent(5, 0), 0.0);
        assert_eq!(percent(1, 4), 25.0);
    }
}
