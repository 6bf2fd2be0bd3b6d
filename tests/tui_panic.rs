//! A panic while the TUI owns the terminal gives the terminal back before the panic message
//! prints: the hook writes the restoring sequences (mouse capture off, main screen, cursor
//! shown). The hook is process-wide, so this is its own test binary with one test.

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_panic_restores_the_terminal_before_reporting() {
    let out = Shared::default();
    let sink = out.clone();
    // the previous hook (the default one) still reports the panic after the restore
    polaris::tui::terminal::install_panic_hook(move || sink.clone());
    let result = std::panic::catch_unwind(|| panic!("a view fell over"));
    assert!(result.is_err());
    let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    for (seq, what) in
        [("\x1b[?1000l", "mouse capture off"), ("\x1b[?1049l", "main screen"), ("\x1b[?25h", "cursor shown")]
    {
        assert!(written.contains(seq), "{what} ({seq:?}) not written: {written:?}");
    }
    let _ = std::panic::take_hook();
}
