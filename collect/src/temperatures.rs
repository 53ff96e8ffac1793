//! Temperature sensors (hwmon and the like, through sysinfo's components). A sensor that
//! reads no finite value reports none rather than a bogus number.

use smon_proto::Temperature;
use sysinfo::Components;

/// The sensors of a refreshed `components`.
pub fn read(components: &Components) -> Vec<Temperature> {
    components
        .iter()
        .map(|c| Temperature {
            label: c.label().to_owned(),
            celsius: c.temperature().filter(|t| t.is_finite()),
            max_celsius: c.max().filter(|t| t.is_finite()),
            critical_celsius: c.critical().filter(|t| t.is_finite()),
        })
        .collect()
}
