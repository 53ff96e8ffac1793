//! The live view: a fetch task polls the source each second (and at once when the user opens
//! or leaves a host), a thread reads the terminal's keys, and the loop applies both to the
//! [`App`] and redraws. The terminal is put back (raw mode off, main screen) on every way
//! out: `q`, Ctrl-C, SIGTERM/SIGHUP/SIGINT, an error, and a panic (ratatui's hook).

use std::io;
use std::time::Duration;

use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use tokio::sync::{mpsc, watch};

use crate::agent::Agent;
use crate::app::{App, Key, Update};
use crate::fleet::Fleet;
use crate::view::View;

/// Where the data comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// One agent over gRPC.
    Agent(Agent),
    /// An aggregator's REST API.
    Fleet(Fleet),
}

impl Source {
    /// One round of fetching: the agent's sample; or the fleet's rows, or the open host's
    /// detail. A failure is an [`Update::Error`] with its sentence.
    pub async fn poll(&mut self, open: Option<&str>) -> Update {
        match self {
            Source::Agent(a) => match a.snapshot().await {
                Ok(s) => Update::Snapshot(Box::new(s)),
                Err(e) => Update::Error(e.to_string()),
            },
            Source::Fleet(f) => match open {
                Some(id) => match f.host(id).await {
                    Ok(d) => Update::Detail(Box::new(d)),
                    Err(e) => Update::Error(e.to_string()),
                },
                None => match f.hosts().await {
                    Ok(h) => Update::Hosts(h),
                    Err(e) => Update::Error(e.to_string()),
                },
            },
        }
    }
}

/// A terminal event as a [`Key`], if it is one the view knows.
pub fn key_of(ev: &Event) -> Option<Key> {
    let Event::Key(k) = ev else { return None };
    if k.kind == KeyEventKind::Release {
        return None;
    }
    Some(match k.code {
        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Key::Quit,
        KeyCode::Char('q') => Key::Quit,
        KeyCode::Char('k') | KeyCode::Up => Key::Up,
        KeyCode::Char('j') | KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc | KeyCode::Backspace | KeyCode::Left => Key::Back,
        KeyCode::Char(c) => Key::Char(c),
        _ => return None,
    })
}

async fn fetch(
    mut source: Source,
    mut open: watch::Receiver<Option<String>>,
    tx: mpsc::Sender<Update>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = open.changed() => if changed.is_err() { return },
        }
        let id = open.borrow_and_update().clone();
        let u = source.poll(id.as_deref()).await;
        if tx.send(u).await.is_err() {
            return;
        }
    }
}

/// Runs the live view on this terminal until the user quits or a signal arrives. `app`
/// already holds the first answer (the caller fetched it before taking the screen over, so
/// that a wrong address or token is a plain message, not a flash of a full-screen view).
pub async fn run(app: App, source: Source) -> io::Result<()> {
    let terminal = ratatui::try_init();
    let r = match terminal {
        Ok(mut t) => event_loop(&mut t, app, source).await,
        Err(e) => Err(e),
    };
    ratatui::restore();
    r
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    mut app: App,
    source: Source,
) -> io::Result<()> {
    let (open_tx, open_rx) = watch::channel(app.open.clone());
    let (up_tx, mut updates) = mpsc::channel(4);
    let fetcher = tokio::spawn(fetch(source, open_rx, up_tx));
    // crossterm's `read` blocks: a thread of its own, ended with the process.
    let (ev_tx, mut events) = mpsc::channel(16);
    std::thread::Builder::new()
        .name("smonctl-keys".into())
        .spawn(move || {
            while let Ok(ev) = event::read() {
                if ev_tx.blocking_send(ev).is_err() {
                    break;
                }
            }
        })?;
    let mut stop = signals()?;
    let r = loop {
        if let Err(e) = terminal.draw(|f| f.render_widget(View(&app), f.area())) {
            break Err(e);
        }
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => {
                    if let Some(k) = key_of(&ev) {
                        app.key(k);
                    }
                    // A resize needs nothing more: the next draw takes the new size.
                }
                None => break Ok(()),
            },
            u = updates.recv() => match u {
                Some(u) => app.apply(u),
                None => break Ok(()),
            },
            _ = stop.recv() => break Ok(()),
        }
        if app.quit {
            break Ok(());
        }
        open_tx.send_if_modified(|o| {
            if *o == app.open {
                false
            } else {
                o.clone_from(&app.open);
                true
            }
        });
    };
    fetcher.abort();
    r
}

/// SIGTERM, SIGHUP and SIGINT as one stream (Ctrl-C itself arrives as a key in raw mode).
fn signals() -> io::Result<mpsc::Receiver<()>> {
    let (tx, rx) = mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        for kind in [
            SignalKind::terminate(),
            SignalKind::hangup(),
            SignalKind::interrupt(),
        ] {
            let mut s = signal(kind)?;
            let tx = tx.clone();
            tokio::spawn(async move {
                if s.recv().await.is_some() {
                    let _ = tx.send(()).await;
                }
            });
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::{KeyEvent, KeyEventState};

    fn press(code: KeyCode, modifiers: KeyModifiers) -> Event {
        Event::Key(KeyEvent {
            code,
            modifiers,
            kind: KeyEventKind::Press,
            state: KeyEventState::NONE,
        })
    }

    #[test]
    fn keys_map_as_the_help_says() {
        assert_eq!(
            key_of(&press(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Key::Quit)
        );
        assert_eq!(
            key_of(&press(KeyCode::Char('c'), KeyModifiers::NONE)),
            Some(Key::Char('c'))
        );
        assert_eq!(
            key_of(&press(KeyCode::Char('q'), KeyModifiers::NONE)),
            Some(Key::Quit)
        );
        assert_eq!(
            key_of(&press(KeyCode::Down, KeyModifiers::NONE)),
            Some(Key::Down)
        );
        assert_eq!(
            key_of(&press(KeyCode::Char('k'), KeyModifiers::NONE)),
            Some(Key::Up)
        );
        assert_eq!(
            key_of(&press(KeyCode::Esc, KeyModifiers::NONE)),
            Some(Key::Back)
        );
        assert_eq!(key_of(&Event::Resize(80, 24)), None);
        let mut release = press(KeyCode::Char('q'), KeyModifiers::NONE);
        if let Event::Key(k) = &mut release {
            k.kind = KeyEventKind::Release;
        }
        assert_eq!(key_of(&release), None);
    }
}
