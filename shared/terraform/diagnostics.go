package terraform

// Terraform's own diagnostics. Plan and Apply run terraform with -json (its machine-readable
// UI): every line it prints is a JSON message, and those of type "diagnostic" carry its errors
// with their summary, detail and place. uiLog keeps the errors as Diagnostic values and writes
// every message's human-readable text to the session's log tail, so an Error says what terraform
// said without Karma reading terraform's human text.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"

	tfjson "github.com/hashicorp/terraform-json"
)

// Diagnostic is one error terraform reported.
type Diagnostic struct {
	Summary string `json:"summary"`
	Detail  string `json:"detail,omitempty"`
	// Address is the resource terraform names, e.g. module.component.terraform_data.vpc.
	Address string `json:"address,omitempty"`
	// Where is "<dir>/<file>:<line>" of the configuration terraform points at.
	Where string `json:"where,omitempty"`
}

// String is the diagnostic as terraform would head it, then its detail on the next lines,
// indented by two spaces.
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString("Error: " + d.Summary)
	var at []string
	for _, s := range []string{d.Address, d.Where} {
		if s != "" {
			at = append(at, s)
		}
	}
	if len(at) > 0 {
		b.WriteString(" (" + strings.Join(at, ", ") + ")")
	}
	for _, line := range strings.Split(strings.TrimSpace(d.Detail), "\n") {
		if line != "" {
			b.WriteString("\n  " + line)
		}
	}
	return b.String()
}

// Limits of what an Error keeps: it travels in deployment.failed.
const (
	maxDiagnostics = 10
	maxDetail      = 1500
)

// uiLog is the io.Writer terraform's -json output goes to.
type uiLog struct {
	mu      sync.Mutex
	text    io.Writer // the log tail: each message's text
	scrub   redactor  // the workspace's sensitive values, scrubbed before a detail is cut
	partial []byte
	errs    []Diagnostic
	dropped int
	// applied are the resource changes terraform reported complete (apply_complete), errored
	// those it reported failed (apply_errored): what an apply that failed half-way did.
	applied, errored changeList
	// applyComplete: terraform reported the apply complete (change_summary, operation apply).
	applyComplete bool
}

func newUILog(text io.Writer, scrub redactor) *uiLog { return &uiLog{text: text, scrub: scrub} }

func (u *uiLog) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.partial = append(u.partial, p...)
	for {
		i := bytes.IndexByte(u.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		u.line(u.partial[:i])
		u.partial = u.partial[i+1:]
	}
}

// line handles one line: a JSON message, or text passed on as it is.
func (u *uiLog) line(b []byte) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return
	}
	if b[0] != '{' {
		fmt.Fprintf(u.text, "%s\n", b)
		return
	}
	msg, err := tfjson.UnmarshalLogMessage(b)
	if err != nil {
		fmt.Fprintf(u.text, "%s\n", b)
		return
	}
	d, ok := msg.(tfjson.DiagnosticLogMessage)
	if !ok {
		fmt.Fprintf(u.text, "%s\n", msg.Message())
		u.hook(b)
		return
	}
	fmt.Fprintf(u.text, "%s\n", msg.Message())
	if d.Detail != "" {
		fmt.Fprintf(u.text, "  %s\n", strings.ReplaceAll(strings.TrimSpace(d.Detail), "\n", "\n  "))
	}
	if d.Severity == tfjson.DiagnosticSeverityError {
		u.add(d.Diagnostic)
	}
}

// hookMessage is the part of an apply_complete or apply_errored message (terraform's
// machine-readable UI, "hook") that names the resource change, and of a change_summary its
// operation.
type hookMessage struct {
	Type    string `json:"type"`
	Changes struct {
		Operation string `json:"operation"`
	} `json:"changes"`
	Hook struct {
		Resource struct {
			Addr string `json:"addr"`
		} `json:"resource"`
		Action string `json:"action"`
	} `json:"hook"`
}

// hook records a resource change terraform completed or failed, or that it completed the apply
// (line b, a JSON message).
func (u *uiLog) hook(b []byte) {
	var h hookMessage
	if json.Unmarshal(b, &h) != nil {
		return
	}
	if h.Type == "change_summary" && h.Changes.Operation == "apply" {
		u.applyComplete = true
		return
	}
	if h.Hook.Resource.Addr == "" {
		return
	}
	change := u.scrub.apply(strings.TrimSpace(h.Hook.Action + " " + h.Hook.Resource.Addr))
	switch h.Type {
	case "apply_complete":
		u.applied.add(change)
	case "apply_errored":
		u.errored.add(change)
	}
}

// changeList is a list of resource changes, "<action> <address>", of at most maxChanges.
type changeList struct {
	changes []string
	dropped int
}

const maxChanges = 50

func (l *changeList) add(c string) {
	if len(l.changes) == maxChanges {
		l.dropped++
		return
	}
	l.changes = append(l.changes, c)
}

// list is the changes, the last one counting those left out.
func (l changeList) list() []string {
	out := append([]string(nil), l.changes...)
	if l.dropped > 0 {
		out = append(out, fmt.Sprintf("… and %d more", l.dropped))
	}
	return out
}

// completed reports whether terraform reported the apply complete.
func (u *uiLog) completed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.applyComplete
}

// changes returns the resource changes terraform completed, and those it failed, so far.
func (u *uiLog) changes() (applied, errored []string) {
	if u == nil {
		return nil, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.applied.list(), u.errored.list()
}

func (u *uiLog) add(d tfjson.Diagnostic) {
	// Scrubbed before it is cut: a secret cut in two would no longer be found whole.
	out := Diagnostic{Summary: u.scrub.apply(d.Summary), Detail: truncate(u.scrub.apply(d.Detail), maxDetail), Address: d.Address}
	if d.Range != nil && d.Range.Filename != "" {
		out.Where = fmt.Sprintf("%s:%d", shortPath(d.Range.Filename), d.Range.Start.Line)
	}
	for _, seen := range u.errs {
		if seen == out {
			return // terraform repeats an error per instance (count, for_each): once is enough
		}
	}
	if len(u.errs) == maxDiagnostics {
		u.dropped++
		return
	}
	u.errs = append(u.errs, out)
}

// diagnostics returns the errors seen so far (a last one counting those left out).
func (u *uiLog) diagnostics() []Diagnostic {
	if u == nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	out := append([]Diagnostic(nil), u.errs...)
	if u.dropped > 0 {
		out = append(out, Diagnostic{Summary: fmt.Sprintf("… and %d more error(s) (see the log)", u.dropped)})
	}
	return out
}

// shortPath keeps a configuration file's last directory and name: the module it belongs to.
func shortPath(p string) string {
	return filepath.Join(filepath.Base(filepath.Dir(p)), filepath.Base(p))
}

// truncate cuts s to at most n bytes, at a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// diagnostics scrubs the workspace's sensitive values from terraform's diagnostics.
func (r redactor) diagnostics(ds []Diagnostic) []Diagnostic {
	for i, d := range ds {
		ds[i] = Diagnostic{Summary: r.apply(d.Summary), Detail: r.apply(d.Detail), Address: r.apply(d.Address), Where: r.apply(d.Where)}
	}
	return ds
}

// formatDiagnostics lists diagnostics one after the other.
func formatDiagnostics(ds []Diagnostic) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, "\n")
}
