//! The floor for the start-up benchmark (`benches/perf.rs`): a bare ratatui
//! hello-world that enters the terminal, draws one frame and leaves, as
//! `DEALFLOW_EXIT_AFTER_FIRST_FRAME=1 dealflow --sandbox` does.

use ratatui::widgets::{Block, Paragraph};

fn main() -> std::io::Result<()> {
    let mut terminal = ratatui::init();
    let drawn = terminal.draw(|f| {
        f.render_widget(
            Paragraph::new("hello, world").block(Block::bordered().title("hello")),
            f.area(),
        );
    });
    // As dealflow does: with DEALFLOW_EXIT_AFTER_FIRST_FRAME naming a file, record when
    // the frame was drawn (before restoring the terminal).
    if let Some(out) =
        std::env::var_os("DEALFLOW_EXIT_AFTER_FIRST_FRAME").filter(|v| v.to_str() != Some("1"))
    {
        // A bare floor does not link dealflow, so not its `wall` either.
        #[allow(clippy::disallowed_methods)]
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        std::fs::write(out, now.to_string())?;
    }
    ratatui::restore();
    drawn.map(|_| ())
}
