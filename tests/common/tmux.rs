//! A private tmux server for end-to-end tests: the real binary runs in panes, read back with
//! capture-pane. Each test names its own socket (`-L`), so it never touches a user's tmux,
//! and the server is killed when the value drops. Waits poll; nothing asserts on time.

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A server on its own socket, named after `label` and this process.
    pub fn new(label: &str) -> Self {
        Self { socket: format!("polaris-{label}-{}", std::process::id()) }
    }

    /// Runs one tmux command against this server; its stdout.
    pub fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A detached session of `width` x `height` cells running `command`.
    pub fn start(&self, session: &str, (width, height): (u16, u16), command: &str) {
        let (w, h) = (width.to_string(), height.to_string());
        self.cmd(&["new-session", "-d", "-s", session, "-x", &w, "-y", &h, command]);
    }

    pub fn screen(&self, session: &str) -> String {
        self.cmd(&["capture-pane", "-p", "-t", session])
    }

    /// Polls the pane until it shows `text`: the screen that showed it, or the last one seen.
    pub fn wait_for(&self, session: &str, text: &str, secs: u64) -> Result<String, String> {
        let start = Instant::now();
        loop {
            let s = self.screen(session);
            if s.contains(text) {
                return Ok(s);
            }
            if start.elapsed() > Duration::from_secs(secs) {
                return Err(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Like `wait_for`, failing the test with the pane's last screen.
    pub fn expect(&self, session: &str, text: &str, secs: u64) -> String {
        self.wait_for(session, text, secs)
            .unwrap_or_else(|s| panic!("pane {session} never showed {text:?}; it shows:\n{s}"))
    }

    pub fn keys(&self, session: &str, keys: &str) {
        self.cmd(&["send-keys", "-t", session, keys]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // our own server only (its own socket)
        let _ = Command::new("tmux").arg("-L").arg(&self.socket).arg("kill-server").output();
    }
}
