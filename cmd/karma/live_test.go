package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func envelope(t *testing.T, typ string, payload any) message.Envelope {
	t.Helper()
	e, err := message.New(typ, "prod", message.Actor{Kind: "cli", Name: "test"}, typ+"-key", payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var ansi = regexp.MustCompile(`\x1b\[[0-9]*[A-Za-z]`)

// tableRows are the table lines of every redraw, in order (the last len(rows) are the last table).
func tableRows(out string) []string {
	var rows []string
	for _, line := range strings.Split(ansi.ReplaceAllString(out, ""), "\n") {
		if strings.HasPrefix(line, "  wave ") {
			rows = append(rows, line)
		}
	}
	return rows
}

// The live table follows each deployment from waiting to done, skipped or FAILED, with the time
// since it was scheduled, and prints what is not a deployment (a change resolved) above it.
func TestLiveTableFollowsDeployments(t *testing.T) {
	var out lockedBuffer
	l := newLive(&out)
	clock := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	l.mu.Lock()
	l.now = func() time.Time { return clock }
	l.mu.Unlock()
	step := func(typ string, payload any, after time.Duration) {
		l.mu.Lock()
		clock = clock.Add(after)
		l.mu.Unlock()
		l.observe("test", message.Envelope{}, []message.Envelope{envelope(t, typ, payload)}, pipeline.Ack, nil)
	}
	sched := func(c string, w int) message.DeploymentScheduled {
		return message.DeploymentScheduled{ChangeSetID: "cs1", DeploymentID: "d-" + c, Component: c, Wave: w}
	}
	step(message.TypeChangeResolved, message.ChangeResolved{ChangeSetID: "cs1", Commit: "0123456789abcdef", Affected: []string{"prod/vpc/core", "prod/ecs/api", "prod/lambda/h"},
		Waves: [][]string{{"prod/vpc/core"}, {"prod/ecs/api", "prod/lambda/h"}}}, 0)
	step(message.TypeDeploymentScheduled, sched("prod/vpc/core", 0), time.Second)
	step(message.TypeDeploymentPlanned, message.DeploymentPlanned{DeploymentScheduled: sched("prod/vpc/core", 0), Plan: message.PlanSummary{Add: 1, Change: 2}}, 2*time.Second)
	mid := tableRows(out.String())
	mid = mid[len(mid)-3:]
	step(message.TypeDeploymentApproved, message.DeploymentApproved{DeploymentPlanned: message.DeploymentPlanned{DeploymentScheduled: sched("prod/vpc/core", 0)}}, time.Second)
	step(message.TypeDeploymentApplied, message.DeploymentApplied{ChangeSetID: "cs1", Component: "prod/vpc/core", ChangedKeys: []string{"private_subnet_ids"}}, 3*time.Second)
	step(message.TypeDeploymentScheduled, sched("prod/ecs/api", 1), time.Second)
	step(message.TypeDeploymentFailed, message.DeploymentFailed{ChangeSetID: "cs1", Component: "prod/ecs/api", Wave: 1, Stage: "plan", Error: "Error: boom\nmore"}, time.Second)
	step(message.TypeDeploymentSkipped, message.DeploymentSkipped{ChangeSetID: "cs1", Component: "prod/lambda/h", Reason: "upstream-failed"}, 0)
	l.Close()

	text := out.String()
	if !strings.Contains(text, "change cs1 [prod] at commit 0123456789ab: 3 component(s) in 2 wave(s)") {
		t.Errorf("the resolved change is not printed above the table:\n%s", text)
	}
	if len(mid) != 3 || !strings.Contains(mid[0], "prod/vpc/core") || !strings.Contains(mid[0], "planned") || !strings.Contains(mid[0], "+1 ~2 -0") || !strings.Contains(mid[1], "waiting") {
		t.Errorf("table after the plan:\n%s", strings.Join(mid, "\n"))
	}
	rows := tableRows(text)
	final := strings.Join(rows[len(rows)-3:], "\n")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`wave 0  prod/vpc/core +done +6s  changed private_subnet_ids`),
		regexp.MustCompile(`(?m)wave 1  prod/ecs/api +FAILED +1s  plan: Error: boom$`),
		regexp.MustCompile(`(?m)wave 1  prod/lambda/h +skipped +.*upstream-failed`),
	} {
		if !want.MatchString(final) {
			t.Errorf("final table does not match %s:\n%s", want, final)
		}
	}
	// Each redraw moves the cursor back over the table it drew, not further.
	if !strings.Contains(text, "\x1b[3A") || strings.Contains(text, "\x1b[4A") {
		t.Errorf("redraws do not move back over exactly the table's 3 lines")
	}
}

// Plain lines when standard output is not a terminal (CI, a pipe, a file), nothing with --json.
func TestViewIsPlainWhenNotATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, out := range map[string]*os.File{"pipe": w, "file": f} {
		if isTerminal(out) {
			t.Errorf("%s taken for a terminal", name)
		}
		if _, ok := newView(out, false).(*progress); !ok {
			t.Errorf("%s: view is not plain lines", name)
		}
	}
	var b bytes.Buffer
	v := newView(&b, true)
	v.observe("test", message.Envelope{}, []message.Envelope{envelope(t, message.TypeDeploymentFailed, message.DeploymentFailed{ChangeSetID: "c", Component: "x", Error: "e"})}, pipeline.Ack, nil)
	if b.Len() != 0 {
		t.Errorf("--json view printed %q", b.String())
	}
}
