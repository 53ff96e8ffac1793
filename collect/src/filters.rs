//! Which disks and network interfaces are reported. The daemons' configs build these from
//! their own JSON blocks (validated there); the collectors only apply them.

/// Validated disk filters.
#[derive(Debug, Clone, Default)]
pub struct DiskFilter {
    /// Pseudo filesystem types to report anyway.
    pub include_fs_types: Vec<String>,
    /// Filesystem types never to report.
    pub exclude_fs_types: Vec<String>,
    /// Mount points (and everything below them) never to report.
    pub exclude_mounts: Vec<String>,
}

/// Validated network filters.
#[derive(Debug, Clone, Default)]
pub struct NetworkFilter {
    /// Interface names or `prefix*` patterns never to report.
    pub exclude_interfaces: Vec<String>,
}

impl NetworkFilter {
    /// True when the interface should be reported.
    pub fn allows(&self, name: &str) -> bool {
        !self
            .exclude_interfaces
            .iter()
            .any(|p| match p.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == p,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_filter_prefixes() {
        let f = NetworkFilter {
            exclude_interfaces: vec!["lo".into(), "veth*".into()],
        };
        assert!(!f.allows("lo"));
        assert!(!f.allows("veth12ab"));
        assert!(f.allows("eth0"));
        assert!(f.allows("lo0"));
    }
}
