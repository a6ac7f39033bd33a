"""The help dialog: every key of every screen on one page."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

HELP = """\
[b]emolab tui[/b] — keys

  [b]1[/b] sessions  [b]2[/b] layers  [b]3[/b] heads  [b]4[/b] steer
  [b]5[/b] plugins  [b]6[/b] log  [b]7[/b] compare (checkpoints)
  [b]?[/b] this help   [b]esc[/b] cancel the running work   [b]q[/b] quit

  sessions  enter open · n new · r replay · a align open with highlighted
  layers    up/down layer + cosines · e emotion · m method · c compute
  heads     arrows · pgup pgdn home end · e emotion · m map · c compute
  steer     p prompt · g generate · e emotion · [ ] layer · - + alpha
            o options: evaluators (judge P(target), success), tokens
  plugins   up/down: a plugin's components and load error
  log       up/down: a step's params and outputs · w write HTML report
  compare   up/down: the emotion whose bars are drawn

Work runs in the background with a progress bar; esc cancels it.
The TUI runs the command line's steps and logs into the session.
"""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(HELP)
            yield Footer()
