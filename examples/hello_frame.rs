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
    ratatui::restore();
    drawn.map(|_| ())
}
