package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// The live view of `karma plan` and `karma apply` on a terminal: one line per deployment, wave by
// wave, redrawn in place as it moves — waiting, planning, awaiting approval, applying, then done,
// skipped or failed — with the time since it was scheduled. When standard output is not a
// terminal (CI, a pipe) the commands print plain lines instead (progress.go).

// Row states.
const (
	rowWaiting  = "waiting"
	rowPlanning = "planning"
	rowPlanned  = "planned"
	rowApplying = "applying"
	rowDone     = "done"
	rowSkipped  = "skipped"
	rowFailed   = "FAILED"
)

type liveRow struct {
	change, component string
	wave              int
	state, note       string
	start, end        time.Time
}

// live redraws the table on a terminal.
type live struct {
	mu     sync.Mutex
	w      io.Writer
	rows   map[string]*liveRow // by change set and component
	drawn  int                 // lines drawn last time
	notes  []string            // lines printed above the table (changes resolved, notices)
	now    func() time.Time
	stop   chan struct{}
	closed bool
	paused bool // while a prompt is on the terminal
}

func newLive(w io.Writer) *live {
	l := &live{w: w, rows: map[string]*liveRow{}, now: time.Now, stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.mu.Lock()
				if !l.paused {
					l.draw()
				}
				l.mu.Unlock()
			}
		}
	}()
	return l
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Close draws the table a last time and stops redrawing.
func (l *live) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.stop)
		l.draw()
	}
}

// pause draws the table once more and stops redrawing, so that a prompt can be written below it;
// resume starts a fresh table below the prompt.
func (l *live) pause() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.draw()
	l.paused, l.drawn = true, 0
}

func (l *live) resume() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paused = false
}

// Write prints a notice above the table (io.Writer, as progress).
func (l *live) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.notes = append(l.notes, strings.TrimRight(string(b), "\n"))
	l.draw()
	return len(b), nil
}

func (l *live) observe(stage string, in message.Envelope, out []message.Envelope, action pipeline.Action, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if action == pipeline.DeadLetter {
		l.notes = append(l.notes, fmt.Sprintf("! %s: message %s dead-lettered: %v", stage, in.ID, err))
	}
	for _, m := range out {
		l.apply(stage, m)
	}
	l.draw()
}

func (l *live) row(change, component string, wave int) *liveRow {
	k := change + "|" + component
	r, ok := l.rows[k]
	if !ok {
		r = &liveRow{change: change, component: component, wave: wave, state: rowWaiting, start: l.now()}
		l.rows[k] = r
	}
	return r
}

func (l *live) settle(r *liveRow, state, note string) {
	r.state, r.note, r.end = state, note, l.now()
}

// apply moves the rows a message concerns.
func (l *live) apply(stage string, m message.Envelope) {
	switch m.Type {
	case message.TypeChangeResolved:
		var r message.ChangeResolved
		if message.Decode(m, &r) != nil {
			return
		}
		if r.Rejected != "" {
			l.notes = append(l.notes, fmt.Sprintf("change %s [%s] rejected: %s", r.ChangeSetID, m.Env, firstLine(strings.TrimSpace(r.Rejected))))
			return
		}
		if r.Held != "" {
			l.notes = append(l.notes, fmt.Sprintf("change %s [%s] held, nothing deployed yet: %s", r.ChangeSetID, m.Env, firstLine(strings.TrimSpace(r.Held))))
			return
		}
		note := fmt.Sprintf("change %s [%s] at commit %.12s: %d component(s) in %d wave(s)", r.ChangeSetID, m.Env, r.Commit, len(r.Affected), len(r.Waves))
		if len(r.QueuedBehind) > 0 {
			note += "; queued behind " + strings.Join(r.QueuedBehind, ", ")
		}
		l.notes = append(l.notes, note)
		for w, ids := range r.Waves {
			for _, id := range ids {
				l.row(r.ChangeSetID, id, w)
			}
		}
	case message.TypeDeploymentScheduled, message.TypeDeploymentRecorded:
		var d message.DeploymentScheduled
		if m.Type == message.TypeDeploymentRecorded {
			var rec message.DeploymentRecorded
			if message.Decode(m, &rec) != nil {
				return
			}
			d = rec.DeploymentScheduled
		} else if message.Decode(m, &d) != nil {
			return
		}
		r := l.row(d.ChangeSetID, d.Component, d.Wave)
		r.state, r.start = rowPlanning, l.now()
	case message.TypeDeploymentPlanned:
		var d message.DeploymentPlanned
		if message.Decode(m, &d) != nil {
			return
		}
		r := l.row(d.ChangeSetID, d.Component, d.Wave)
		r.state, r.note = rowPlanned, fmt.Sprintf("+%d ~%d -%d", d.Plan.Add, d.Plan.Change, d.Plan.Destroy)
	case message.TypeDeploymentApproved:
		var d message.DeploymentApproved
		if message.Decode(m, &d) == nil {
			l.row(d.ChangeSetID, d.Component, d.Wave).state = rowApplying
		}
	case message.TypeDeploymentApplied:
		var d message.DeploymentApplied
		if message.Decode(m, &d) == nil {
			note := "no output changed"
			if len(d.ChangedKeys) > 0 {
				note = "changed " + strings.Join(d.ChangedKeys, ", ")
			}
			l.settle(l.row(d.ChangeSetID, d.Component, d.Wave), rowDone, note)
		}
	case message.TypeDeploymentSkipped:
		var d message.DeploymentSkipped
		if message.Decode(m, &d) == nil {
			r := l.row(d.ChangeSetID, d.Component, 0)
			l.settle(r, rowSkipped, d.Reason)
		}
	case message.TypeDeploymentFailed:
		var d message.DeploymentFailed
		if message.Decode(m, &d) == nil {
			l.settle(l.row(d.ChangeSetID, d.Component, d.Wave), rowFailed, d.Stage+": "+firstLine(strings.TrimSpace(d.Error)))
		}
	}
}

// draw redraws the notes not yet printed and the table in place. Called with l.mu held.
func (l *live) draw() {
	var b strings.Builder
	if l.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", l.drawn) // back to the table's first line
	}
	for _, n := range l.notes {
		fmt.Fprintf(&b, "\x1b[2K%s\n", n)
	}
	l.notes = nil
	rows := make([]*liveRow, 0, len(l.rows))
	for _, r := range l.rows {
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].change != rows[j].change {
			return rows[i].change < rows[j].change
		}
		if rows[i].wave != rows[j].wave {
			return rows[i].wave < rows[j].wave
		}
		return rows[i].component < rows[j].component
	})
	for _, r := range rows {
		end := r.end
		if end.IsZero() {
			end = l.now()
		}
		elapsed := ""
		if r.state != rowWaiting {
			elapsed = end.Sub(r.start).Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "\x1b[2K  wave %d  %-34s %-17s %7s  %s\n", r.wave, r.component, r.state, elapsed, r.note)
	}
	l.drawn = len(rows)
	io.WriteString(l.w, b.String())
}
