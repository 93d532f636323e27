package main

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// progress prints one line per state change as the pipeline runs.
type progress struct {
	mu sync.Mutex
	w  io.Writer
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

// Close, pause and resume: nothing to do for plain lines.
func (p *progress) Close()  {}
func (p *progress) pause()  {}
func (p *progress) resume() {}

// view is how plan and apply show the pipeline as it runs.
type view interface {
	io.Writer // notices
	observe(stage string, in message.Envelope, out []message.Envelope, action pipeline.Action, err error)
	Close()
	pause()  // before a prompt
	resume() // after it
}

// newView is the live table on a terminal, plain lines otherwise, nothing with --json (the
// summary is the output).
func newView(w io.Writer, asJSON bool) view {
	switch {
	case asJSON:
		return newProgress(io.Discard)
	case isTerminal(w):
		return newLive(w)
	}
	return newProgress(w)
}

func (p *progress) observe(stage string, in message.Envelope, out []message.Envelope, action pipeline.Action, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if action == pipeline.DeadLetter {
		fmt.Fprintf(p.w, "  ! %s: message %s dead-lettered: %v\n", stage, in.ID, err)
	}
	for _, m := range out {
		p.line(stage, m, out)
	}
}

// Write prints notices between progress lines (io.Writer).
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.w.Write(b)
}

// line prints m, one of the messages out that a stage published together.
func (p *progress) line(stage string, m message.Envelope, out []message.Envelope) {
	switch m.Type {
	case message.TypeChangeResolved:
		var r message.ChangeResolved
		if message.Decode(m, &r) == nil {
			if r.Rejected != "" {
				fmt.Fprintf(p.w, "change %s [%s] rejected:\n%s\n", r.ChangeSetID, m.Env, r.Rejected)
				return
			}
			if r.Held != "" {
				fmt.Fprintf(p.w, "change %s [%s] held, nothing deployed yet (tried again once the environments it waits for move):\n%s\n", r.ChangeSetID, m.Env, r.Held)
				return
			}
			fmt.Fprintf(p.w, "change %s [%s] at commit %.12s: %d component(s) may be affected in %d wave(s); roots: %s\n", r.ChangeSetID, m.Env,
				r.Commit, len(r.Affected), len(r.Waves), strings.Join(r.Roots, ", "))
			if len(r.QueuedBehind) > 0 {
				fmt.Fprintf(p.w, "  queued behind %s (same components, earlier)\n", strings.Join(r.QueuedBehind, ", "))
			}
		}
	case message.TypeDeploymentPlanned:
		var d message.DeploymentPlanned
		if message.Decode(m, &d) == nil {
			what := "planned  "
			if stage == pipeline.StageApply {
				what = "planned again"
			}
			fmt.Fprintf(p.w, "  wave %d  %-32s %s +%d ~%d -%d\n", d.Wave, d.Component, what, d.Plan.Add, d.Plan.Change, d.Plan.Destroy)
			switch {
			case stage != pipeline.StageApply:
			case causes(m, out): // applied at once (auto-approved), or failed: the next line says which
				fmt.Fprintf(p.w, "          the plan went stale (the workspace's state changed since it was made): this new plan is the one applied\n")
			default:
				fmt.Fprintf(p.w, "          the reviewed plan went stale (the workspace's state changed since it was made): this new plan waits for a review (karma apply %s)\n", d.ChangeSetID)
			}
		}
	case message.TypeDeploymentApplied:
		var d message.DeploymentApplied
		if message.Decode(m, &d) == nil {
			keys := "no output changed"
			if len(d.ChangedKeys) > 0 {
				keys = "changed: " + strings.Join(d.ChangedKeys, ", ")
			}
			fmt.Fprintf(p.w, "  wave %d  %-32s applied   %s (%s)\n", d.Wave, d.Component, d.DeploymentID, keys)
		}
	case message.TypeDeploymentSkipped:
		var d message.DeploymentSkipped
		if message.Decode(m, &d) == nil {
			fmt.Fprintf(p.w, "          %-32s skipped   %s\n", d.Component, d.Reason)
		}
	case message.TypeDeploymentFailed:
		var d message.DeploymentFailed
		if message.Decode(m, &d) == nil {
			head, rest, _ := strings.Cut(d.Error, "\n")
			fmt.Fprintf(p.w, "  wave %d  %-32s FAILED    %s %s: %s\n", d.Wave, d.Component, d.DeploymentID, d.Stage, head)
			printDetail(p.w, "            ", rest, "karma lineage "+d.DeploymentID)
		}
	}
}

// causes reports whether m caused another of the messages out.
func causes(m message.Envelope, out []message.Envelope) bool {
	for _, o := range out {
		if o.CausationID == m.ID {
			return true
		}
	}
	return false
}

// maxDetailLines is how much of a failure's detail progress and summaries print.
const maxDetailLines = 20

// printDetail prints the lines of detail with indent, at most maxDetailLines; where says where
// to read the rest.
func printDetail(w io.Writer, indent, detail, where string) {
	if strings.TrimSpace(detail) == "" {
		return
	}
	lines := strings.Split(strings.TrimRight(detail, "\n"), "\n")
	for i, l := range lines {
		if i == maxDetailLines {
			fmt.Fprintf(w, "%s… %d more line(s): %s\n", indent, len(lines)-i, where)
			return
		}
		fmt.Fprintf(w, "%s%s\n", indent, l)
	}
}
