//! The state of `smonctl top` and what each key does to it, without a terminal or a network:
//! the data last received (a [`Snapshot`], the fleet's [`HostRow`]s, one [`HostDetail`]), the
//! sort order, the selection, the help overlay and the error line. The event loop
//! (`crate::term`) feeds it [`Key`]s and [`Update`]s; the view (`crate::view`) draws it.

use smon_api::wire::{HostDetail, HostRow};
use smon_proto::Snapshot;

/// How the process table (and the fleet list) is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Busiest first (`c`).
    #[default]
    Cpu,
    /// Largest resident memory first (`m`).
    Memory,
    /// The fleet list in the server's order, by cluster and name (`n`); processes by CPU.
    Name,
}

impl Sort {
    /// The word the view shows.
    pub fn label(self) -> &'static str {
        match self {
            Sort::Cpu => "CPU",
            Sort::Memory => "memory",
            Sort::Name => "name",
        }
    }
}

/// A key, as far as the view cares (the event loop maps the terminal's events to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Up arrow or `k`.
    Up,
    /// Down arrow or `j`.
    Down,
    /// Page up.
    PageUp,
    /// Page down.
    PageDown,
    /// Home.
    Home,
    /// End.
    End,
    /// Enter: open the selected host.
    Enter,
    /// Esc or Backspace: back to the list, or close the help.
    Back,
    /// `q` or Ctrl-C.
    Quit,
    /// Any other character.
    Char(char),
}

/// What the event loop hears from the data source.
#[derive(Debug, Clone)]
pub enum Update {
    /// One host's latest sample (agent mode).
    Snapshot(Box<Snapshot>),
    /// The fleet's rows.
    Hosts(Vec<HostRow>),
    /// The open host's detail.
    Detail(Box<HostDetail>),
    /// A failed fetch, as a sentence; the data last received stays on screen.
    Error(String),
}

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// One agent over gRPC, at this address.
    Agent(String),
    /// An aggregator's REST API, at this URL.
    Fleet(String),
}

/// Everything the view draws.
#[derive(Debug, Clone)]
pub struct App {
    /// Where the data comes from.
    pub mode: Mode,
    /// Sort order (processes; the fleet list).
    pub sort: Sort,
    /// The help overlay is open.
    pub help: bool,
    /// The last fetch failed: why, as a sentence.
    pub error: Option<String>,
    /// Agent mode: the latest sample.
    pub snapshot: Option<Snapshot>,
    /// Fleet mode: every host, in the server's order.
    pub hosts: Vec<HostRow>,
    /// Fleet mode: the selected host's id.
    pub selected: Option<String>,
    /// Fleet mode: the host whose detail is open (None: the list).
    pub open: Option<String>,
    /// Fleet mode: the open host's detail, once received.
    pub detail: Option<HostDetail>,
    /// First process row shown (scrolling the process table).
    pub scroll: usize,
    /// Kernel threads are listed (`K`; hidden by default, as in htop).
    pub kernel_threads: bool,
    /// The user asked to quit.
    pub quit: bool,
    /// Keys work (the live view); false for `--once`, whose text shows no key hints.
    pub interactive: bool,
}

impl App {
    /// A view of `mode` with nothing received yet.
    pub fn new(mode: Mode) -> Self {
        let sort = match mode {
            Mode::Agent(_) => Sort::Cpu,
            Mode::Fleet(_) => Sort::Name,
        };
        Self {
            mode,
            sort,
            help: false,
            error: None,
            snapshot: None,
            hosts: Vec::new(),
            selected: None,
            open: None,
            detail: None,
            scroll: 0,
            kernel_threads: false,
            quit: false,
            interactive: true,
        }
    }

    /// Whether the fleet list is on screen (fleet mode, no host open).
    pub fn showing_list(&self) -> bool {
        matches!(self.mode, Mode::Fleet(_)) && self.open.is_none()
    }

    /// The hosts in the order the list shows them.
    pub fn sorted_hosts(&self) -> Vec<&HostRow> {
        let mut v: Vec<&HostRow> = self.hosts.iter().collect();
        let f = |x: Option<f32>| x.filter(|v| v.is_finite()).unwrap_or(-1.0);
        match self.sort {
            Sort::Name => {}
            Sort::Cpu => v.sort_by(|a, b| f(b.cpu_percent).total_cmp(&f(a.cpu_percent))),
            Sort::Memory => v.sort_by(|a, b| f(b.mem_percent).total_cmp(&f(a.mem_percent))),
        }
        v
    }

    /// The index of the selected host in [`App::sorted_hosts`] (the first when none is).
    pub fn selected_index(&self) -> usize {
        let hosts = self.sorted_hosts();
        self.selected
            .as_deref()
            .and_then(|id| hosts.iter().position(|h| h.id == id))
            .unwrap_or(0)
    }

    /// Takes in what the source sent.
    pub fn apply(&mut self, u: Update) {
        match u {
            Update::Snapshot(s) => {
                self.snapshot = Some(*s);
                self.error = None;
            }
            Update::Hosts(h) => {
                self.hosts = h;
                if self.selected.is_none() {
                    self.selected = self.sorted_hosts().first().map(|h| h.id.clone());
                }
                self.error = None;
            }
            Update::Detail(d) => {
                // A late answer for a host the user has left is dropped.
                if self.open.as_deref() == Some(d.host.id.as_str()) {
                    self.detail = Some(*d);
                    self.error = None;
                }
            }
            Update::Error(e) => self.error = Some(e),
        }
    }

    /// Applies a key press.
    pub fn key(&mut self, k: Key) {
        if self.help {
            // Any key closes the help; q still quits.
            self.help = false;
            if k == Key::Quit {
                self.quit = true;
            }
            return;
        }
        match k {
            Key::Quit => self.quit = true,
            Key::Char('?' | 'h') => self.help = true,
            Key::Char('c') => self.sort = Sort::Cpu,
            Key::Char('m') => self.sort = Sort::Memory,
            Key::Char('K') => self.kernel_threads = !self.kernel_threads,
            Key::Char('n') if self.showing_list() => self.sort = Sort::Name,
            Key::Up | Key::Down | Key::PageUp | Key::PageDown | Key::Home | Key::End
                if self.showing_list() =>
            {
                self.move_selection(k)
            }
            Key::Up => self.scroll = self.scroll.saturating_sub(1),
            Key::Down => self.scroll = self.scroll.saturating_add(1),
            Key::PageUp => self.scroll = self.scroll.saturating_sub(10),
            Key::PageDown => self.scroll = self.scroll.saturating_add(10),
            Key::Home => self.scroll = 0,
            Key::Enter if self.showing_list() => {
                let hosts = self.sorted_hosts();
                if let Some(h) = hosts.get(self.selected_index()) {
                    self.open = Some(h.id.clone());
                    self.detail = None;
                    self.scroll = 0;
                }
            }
            Key::Back if self.open.is_some() => {
                self.open = None;
                self.detail = None;
            }
            _ => {}
        }
    }

    fn move_selection(&mut self, k: Key) {
        let hosts = self.sorted_hosts();
        if hosts.is_empty() {
            return;
        }
        let last = hosts.len() - 1;
        let i = self.selected_index();
        let j = match k {
            Key::Up => i.saturating_sub(1),
            Key::Down => (i + 1).min(last),
            Key::PageUp => i.saturating_sub(10),
            Key::PageDown => (i + 10).min(last),
            Key::Home => 0,
            _ => last,
        };
        self.selected = hosts.get(j).map(|h| h.id.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::row;

    fn fleet() -> App {
        let mut a = App::new(Mode::Fleet("http://x/".into()));
        a.apply(Update::Hosts(vec![
            row("c:a", 10.0, 90.0),
            row("c:b", 80.0, 5.0),
            row("c:c", f32::NAN, 50.0),
        ]));
        a
    }

    #[test]
    fn arrows_move_the_selection_in_the_shown_order_and_enter_opens_it() {
        let mut a = fleet();
        assert_eq!(a.selected.as_deref(), Some("c:a"));
        a.key(Key::Char('c'));
        let ids: Vec<_> = a.sorted_hosts().iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["c:b", "c:a", "c:c"], "NaN sorts last");
        // The selection follows the host, not the position.
        assert_eq!(a.selected_index(), 1);
        a.key(Key::Up);
        assert_eq!(a.selected.as_deref(), Some("c:b"));
        a.key(Key::Up);
        assert_eq!(a.selected.as_deref(), Some("c:b"), "stays at the top");
        a.key(Key::End);
        a.key(Key::Down);
        assert_eq!(a.selected.as_deref(), Some("c:c"), "stays at the bottom");
        a.key(Key::Enter);
        assert_eq!(a.open.as_deref(), Some("c:c"));
        assert!(!a.showing_list());
        a.key(Key::Back);
        assert!(a.showing_list());
        a.key(Key::Char('m'));
        assert_eq!(a.sorted_hosts()[0].id, "c:a");
    }

    #[test]
    fn errors_stay_until_data_arrives_and_late_details_are_dropped() {
        let mut a = fleet();
        a.apply(Update::Error("the server is gone".into()));
        assert_eq!(a.hosts.len(), 3, "the last data stays");
        assert!(a.error.is_some());
        a.key(Key::Enter);
        let mut d = HostDetail {
            host: row("c:b", 1.0, 1.0),
            info: None,
            detail: None,
        };
        a.apply(Update::Detail(Box::new(d.clone())));
        assert!(a.detail.is_none(), "an answer for another host");
        d.host.id = "c:a".into();
        a.apply(Update::Detail(Box::new(d)));
        assert!(a.detail.is_some() && a.error.is_none());
    }

    #[test]
    fn help_closes_on_any_key_and_q_quits() {
        let mut a = App::new(Mode::Agent("127.0.0.1:1".into()));
        a.key(Key::Char('?'));
        assert!(a.help);
        a.key(Key::Char('m'));
        assert!(!a.help);
        assert_eq!(
            a.sort,
            Sort::Cpu,
            "the key that closed the help did nothing else"
        );
        a.key(Key::Char('m'));
        assert_eq!(a.sort, Sort::Memory);
        a.key(Key::Down);
        assert_eq!(a.scroll, 1);
        a.key(Key::Quit);
        assert!(a.quit);
    }
}
