package main

import (
	"log/slog"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressMin is the smallest map that shows progress.
const progressMin = 1000

// progress shows a long map's progress: a bar on stderr when stderr is a
// terminal, else a line in the log every few seconds.
type progress struct {
	bar   *progressbar.ProgressBar
	log   *slog.Logger
	total int
	done  int
	shown int // of done, what the bar shows
	last  time.Time
}

// progressEvery is how many results go by between two looks at the clock
// or two updates of the bar: a million results cost a thousand, not a
// million (and a result takes well under a microsecond).
const progressEvery = 1024

func newProgress(total int, log *slog.Logger) *progress {
	p := &progress{log: log, total: total, last: time.Now()}
	if total >= progressMin && term.IsTerminal(int(os.Stderr.Fd())) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription("map"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("tasks"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

func (p *progress) add() {
	p.done++
	if p.done%progressEvery != 0 {
		return
	}
	if p.bar != nil {
		_ = p.bar.Add(p.done - p.shown)
		p.shown = p.done
		return
	}
	if p.total >= progressMin && time.Since(p.last) >= 2*time.Second {
		p.last = time.Now()
		p.log.Info("map progress", "done", p.done, "total", p.total)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Add(p.done - p.shown)
		p.shown = p.done
		_ = p.bar.Finish()
	}
}
