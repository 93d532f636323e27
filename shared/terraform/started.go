package terraform

// terraform-exec starts a command, then returns at once, without waiting for it or reading its
// output, if the command's context ended while it was starting it (tfexec.runTerraformCmd
// checks ctx.Err() right after exec.Cmd.Start): the process runs on, unwatched — an apply
// applying, its outcome never read, and the workspace's lock released while it runs. Under load
// the whole of a short command can run in that window. So the context terraform-exec is given
// for a command ends when the caller's does, but not before the command was seen to start —
// its first output, which terraform-exec reads only once past that check (terraform prints a
// line first: the version, in -json) — nor later than startGrace after the caller's ended, for a
// command that prints nothing. Interrupted then, terraform-exec interrupts it and waits for it
// as usual (GracePeriod), and what it did is read from its output.

import (
	"context"
	"io"
	"sync"
	"time"
)

// startGrace is how long after the caller's context ended a command that printed nothing yet
// is left before its context ends too (a variable for the tests).
var startGrace = 2 * time.Second

// startWatch notes the first output of the command running now.
type startWatch struct {
	mu   sync.Mutex
	seen chan struct{} // closed at the current command's first output
}

// begin starts watching a new command and returns the channel its first output closes.
func (w *startWatch) begin() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = make(chan struct{})
	return w.seen
}

func (w *startWatch) output() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil {
		return
	}
	select {
	case <-w.seen:
	default:
		close(w.seen)
	}
}

// watched is a writer terraform-exec copies a command's output to, noting that it started.
type watched struct {
	io.Writer
	w *startWatch
}

func (o watched) Write(p []byte) (int, error) {
	if len(p) > 0 {
		o.w.output()
	}
	return o.Writer.Write(p)
}

// command runs call, one terraform command, with the context described above. A caller's
// context that ended before the command starts runs nothing.
func (s *session) command(ctx context.Context, call func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &afterStart{Context: ctx, done: make(chan struct{})}
	seen := s.watch.begin()
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(startGrace)
		defer t.Stop()
		select {
		case <-seen:
		case <-t.C:
		}
		c.end(ctx.Err())
	})
	defer stop()
	return call(c)
}

// afterStart is the context of one command: ctx's values and deadline, ended by end.
type afterStart struct {
	context.Context
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func (c *afterStart) Done() <-chan struct{} { return c.done }

func (c *afterStart) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *afterStart) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
}

// watched is w, noting the running command's first output.
func (s *session) watched(w io.Writer) io.Writer { return watched{Writer: w, w: &s.watch} }
