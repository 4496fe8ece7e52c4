"""distill.progress.Progress: a live rich bar on a terminal, the plain lines of before everywhere else."""

import io
import re

from rich.console import Console

from distill.progress import Progress

PLAIN = re.compile(r"^\[train t\] step (\d+)/10 \((\d+)%\) eta (\S+)(.*)$")


def test_off_a_terminal_the_plain_lines_are_those_of_before():
    lines = []
    progress = Progress("[train t] step", 10, done=2, log=lines.append, console=Console(file=io.StringIO()))
    assert progress.bar is None
    progress.update(5, "  loss 0.5000")
    progress.update(10, "  loss 0.1000")
    progress.close()
    assert [PLAIN.match(line).group(1, 2, 4) for line in lines] == [("5", "50", "  loss 0.5000"), ("10", "100", "  loss 0.1000")]
    # the eta is that of RateMeter.line, from the first update of this process (2 steps were done before it)
    assert PLAIN.match(lines[-1]).group(3) in ("0s", "?")


def test_off_a_terminal_lines_come_at_most_every_so_often():
    lines = []
    progress = Progress("[score]", 100, every=3600, log=lines.append, console=Console(file=io.StringIO()))
    for done in range(1, 101):
        progress.update(done)
    assert lines == []


def test_on_a_terminal_one_live_bar_and_no_plain_lines():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=150, color_system=None)
    lines = []
    progress = Progress("[train t] step", 10, done=2, log=lines.append, console=console)
    assert progress.bar is not None
    progress.update(5, "  loss 0.5000")
    print("a line said while the bar is live")  # say() prints like this: it lands above the bar, not through it
    progress.update(10, "  loss 0.1000")  # the last item stops the bar
    assert progress.bar is None
    screen = out.getvalue()
    assert lines == []
    assert "a line said while the bar is live" in screen
    final = [line for line in screen.splitlines() if "10/10" in line][-1]
    assert "[train t] step" in final and "100%" in final and "/s" in final and "loss 0.1000" in final
    assert "\x1b[" in screen  # drawn in place with terminal control codes, not printed line after line
